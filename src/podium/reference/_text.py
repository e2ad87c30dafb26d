"""What each field and key means, for the reference page. The field lists, types, defaults and
limits come from the models themselves; `podium.reference` refuses to render when a field has no
description here (or in its model's `Field(description=)`), or one here names no field."""

from __future__ import annotations

FIELDS: dict[str, str] = {
    # the workflow document
    "Workflow.name": "The workflow's name, shown by `runs` and in pictures.",
    "Workflow.version": "A label you bump when the workflow changes (numbers become text).",
    "Workflow.description": "Free text.",
    "Workflow.inputs": "The run's inputs by name; `--input NAME=VALUE` sets one.",
    "Workflow.steps": "The steps, in any order; `needs` orders them.",
    "Workflow.max_concurrency": "At most this many steps run at once (default: no limit).",
    "Workflow.on_failure": "What a failure does: `fail_fast` cancels the rest, `collect` lets "
    "independent branches finish. A step's own `on_failure` wins.",
    "Workflow.output_limit_bytes": "Outputs larger than this are stored truncated, with a marker.",
    "Workflow.budget": "Limits shared by the run's whole tree of plans.",
    "Workflow.policy": "Approval rules and blocked agents, on top of the project's `[policy]`: "
    "a workflow may only turn rules on and block more agents.",
    "Workflow.execution": "Where its shell, python, http and file steps run unless they say: "
    "`local` (the driver's process) or `ray` (Ray tasks; see the README's Ray part). Default: "
    "the project's `execution`.",
    "InputSpec.type": "What the value must be; `--input` text is converted to it.",
    "InputSpec.default": "The value when none is given.",
    "InputSpec.required": "Whether a value must be given (default: when there is no `default`).",
    "InputSpec.description": "Free text.",
    "InputSpec.env": "A `secret` input: the environment variable a process that did not submit "
    "the run (a resume, a worker) reads the value from; default: the input's name in upper case.",
    # every step
    "StepBase.id": "The step's id: `steps.<id>` in templates, `needs` and the CLI.",
    "StepBase.name": "A display name.",
    "StepBase.needs": "The steps that must finish first (one id or a list).",
    "StepBase.join": "How many needs must succeed: `all`, `any` or `{quorum: N}`; `any` and "
    "`quorum` cancel the losing siblings once they fire.",
    "StepBase.on_failure": "Overrides the workflow's `on_failure` for this step's failure.",
    "StepBase.allow_failure": "A failure of this step counts as success for the steps that need "
    "it and does not fail the run.",
    "StepBase.allow_skipped": "The steps that need this one still run when it was skipped.",
    "StepBase.when": "A condition (`steps.a.output.n > 0`); false skips the step.",
    "StepBase.approval": "`required` (or `true`), or a condition: a person approves, edits or "
    "rejects the step's rendered input before it starts (`podium approvals`, `podium approve`).",
    "StepBase.allow_untrusted": "An explicit opt-out: untrusted text (outputs of http, agent, "
    "plan and workflow steps, and what derives from them) may reach this step's shell `run` or "
    "`cwd`, url host or file path without a person approving it first. A planner cannot set it.",
    "StepBase.retry": "Attempts and backoff; `retry: 3` is short for `{max_attempts: 3}`.",
    "StepBase.timeout": "The whole step's time limit (`30`, `500ms`, `30s`, `5m`, `1h`).",
    "StepBase.idempotent": "Whether an interrupted attempt may run again without asking "
    "(default: per kind).",
    "StepBase.expected_seconds": "A scheduling hint: among ready steps, the one with the longest "
    "remaining path goes first.",
    "StepBase.output": "`text`, `json` (parsed) or a JSON Schema the output must match.",
    "StepBase.execution": "`local` or `ray`: where its attempts run (default: the workflow's, "
    "else the project's). Only shell, python, http and file steps run on Ray.",
    # shell
    "ShellStep.run": "The command: a string split into argv (no shell), or a list of argv.",
    "ShellStep.shell": "Run `run` through `sh -c` or `bash -c` (pipes, `&&`, `$VAR`).",
    "ShellStep.env": "Extra environment variables.",
    "ShellStep.cwd": "The working folder, relative to the workspace.",
    "ShellStep.stdin": "Text fed to the program's standard input.",
    "ShellStep.secrets": "Names of engine environment variables copied into the step's "
    "environment (a sandboxed step sees no others); one not set fails the step.",
    "ShellStep.sandbox": "Run inside the bubblewrap sandbox: no network, read-only system, only "
    "the workspace writable, empty environment, every descendant killed with the step. `false` "
    "runs it with the engine's rights, shown as `sandbox: off`.",
    # python
    "PythonStep.call": "A registered name (`@podium.register`) or `package.module:function`.",
    "PythonStep.args": "Keyword arguments; templates keep their types.",
    # file
    "FileStep.op": "`read`, `write` (atomic replace) or `append`.",
    "FileStep.path": "A path inside the workspace; escapes (`..`, symlinks out) are refused.",
    "FileStep.content": "What `write` and `append` write (text, or JSON for other values).",
    # http
    "HttpStep.url": "An http:// or https:// URL.",
    "HttpStep.method": "The HTTP method (any case).",
    "HttpStep.headers": "Request headers.",
    "HttpStep.query": "Query parameters, added to any in the URL.",
    "HttpStep.body": "The request body: text, or JSON for other values.",
    "HttpStep.expect_status": "Statuses that count as success (default: any 2xx).",
    # workflow
    "WorkflowStep.workflow": "The child workflow: a file relative to the run's workspace, or a "
    "registered name (`Engine(workflows=…)`, else `workflows/<name>.yaml` in the workspace).",
    "WorkflowStep.inputs": "The child's inputs, templated; each must be one it declares.",
    "WorkflowStep.budget": "The child's own budget, further capped by what the run tree's "
    "budget has left when it starts.",
    # agent
    "HumanStep.prompt": "The question for a person, a template (`podium answer RUN STEP VALUE`).",
    "HumanStep.input": "What answers it: `text`, `{choice: [options]}`, or a JSON Schema the "
    "answer must satisfy (given as JSON on the command line).",
    "HumanStep.on_timeout": "No answer within `timeout`: `fail`, or `{default: VALUE}` (the "
    "step succeeds with it).",
    "AgentStep.agent": "The catalog agent (`agents/<name>.md`) that answers.",
    "AgentStep.prompt": "The task, a template.",
    "AgentStep.model": "`provider:model`, overriding the agent's and the run's default.",
    "AgentStep.context": "Which needs' outputs the agent sees: `auto` (all), `none`, or a list "
    "of step ids.",
    "AgentStep.context_limits": "How much of those outputs it sees.",
    "AgentStep.max_turns": "At most this many model calls (tool rounds included).",
    "AgentStep.max_reasks": "How often a reply that does not match `output` is sent back.",
    "AgentStep.options": "Model call options merged over the agent's own.",
    "AgentStep.history": "Earlier messages of a conversation, sent between the instructions "
    "and the prompt, oldest first (`podium ask` fills it from the thread).",
    "HistoryMessage.role": "Who said it: `user` or `assistant`.",
    "HistoryMessage.content": "What was said.",
    # the project configuration's [routing] and [threads] (podium.toml)
    "RoutingConfig.rules": "`[[routing.rules]]`, tried in order; the first match names the agent.",
    "RoutingConfig.router": "An agent that chooses among the catalog's agents when no rule "
    "matches (one structured-output call; its answer must be one of their names).",
    "RoutingConfig.default": "The agent when no rule matches and no router chose.",
    "RoutingRule.pattern": "A regular expression searched in the message (any case).",
    "RoutingRule.agent": "The agent a matching message goes to.",
    "ThreadsConfig.on_busy": "New input while a run on its thread is live: `reject` it, "
    "`queue` it behind the live run, or `interrupt` (cancel) the live run.",
    "ThreadsConfig.history_messages": "At most this many earlier exchanges are sent, the newest.",
    "ThreadsConfig.history_chars": "At most this many characters of them.",
    "SecretsConfig.env": "Environment variables whose values are secrets: redacted from events, "
    "logs, live output and spans (provider keys always are).",
    # plan
    "PlanStep.goal": "What the plan must achieve, a template.",
    "PlanStep.planner": "The supervisor agent that writes the plan.",
    "PlanStep.agents": "The agents a plan may use (default: the whole catalog).",
    "PlanStep.mode": "`auto` keeps the plan's needs; `sequential` chains the steps, `parallel` "
    "drops the needs, `swarm` also gives every step the first step's agent.",
    "PlanStep.confirm": "Wait for `podium approve` (or `reject`) before running a plan.",
    "PlanStep.max_replans": "How often a failed child leads to a new plan.",
    "PlanStep.max_plan_attempts": "How often the planner may answer with an invalid plan.",
    "PlanStep.max_children": "At most this many steps in one plan.",
    "PlanStep.replan": "`replace` drops the pending children of the old plan; `append` keeps them.",
    "PlanStep.aggregator": "An agent that synthesises the children's outputs (child `aggregate`).",
    "PlanStep.verifier": "An agent that checks the result and answers a verdict (child `verify`).",
    "PlanStep.patterns": "Lessons shown to the planner under 'Patterns that worked before'.",
    "PlanStep.context_limits": "What each child sees of its needs' outputs.",
    "PlanStep.kinds": "The step kinds the planner may generate: `agent` (the default), `shell`, "
    "`http`, `file`, `workflow`; the policy holds a planner's shell, file writes, non-GET http "
    "and workflow steps for approval by default.",
    # loop
    "LoopStep.max_iterations": "Required: at most this many iterations (1 to 10,000).",
    "LoopStep.until": "A condition evaluated after each iteration against it "
    "(`steps.<body id>` is that iteration's step); when it holds the loop succeeds.",
    "LoopStep.steps": "The body, repeated as children `<loop>.<n>.<body id>`: any kinds, "
    "`needs` within the body; templates read `loop.iteration` and `loop.previous.<id>`.",
    # nested values
    "RetryPolicy.max_attempts": "Attempts in all, the first included.",
    "RetryPolicy.initial_delay_seconds": "The wait before the second attempt (a duration).",
    "RetryPolicy.backoff": "Each later wait is this many times the one before.",
    "RetryPolicy.max_delay_seconds": "No wait is longer than this (a duration).",
    "RetryPolicy.jitter": "Each wait varies randomly by up to this fraction.",
    "Budget.tokens": "Model tokens, input and output, across the tree.",
    "Budget.cost_usd": "Model cost in US dollars, from the price table.",
    "Budget.steps": "Steps and spawns started anywhere in the tree.",
    "Budget.depth": "Plan nesting (the root workflow's steps are at depth 0).",
    "Budget.wall_seconds": "Wall-clock time for the whole run (a duration).",
    "Budget.parallelism": "Steps running at once across the tree.",
    "Budget.loop_iterations": "Loop iterations started anywhere in the tree.",
    "Quorum.quorum": "How many needs must succeed (at most the number of needs).",
    "Policy.approve": "Rules that hold a step (or a tool call) for a person; unset rules take "
    "their defaults.",
    "Policy.block_agents": "Agents no step, plan or fallback may use (any case).",
    "Policy.files": "File confinement: `podium_state` lets file steps and tools touch "
    "Podium's own state (default false; only the project configuration allows it).",
    "Policy.sandbox": "The shell sandbox: `enabled` (default true; only the project "
    "configuration turns it off) and `read`, extra host paths mounted read-only (project only).",
    "Policy.network": "What the SSRF guard lets http steps and `http_get` reach although it is "
    "loopback, private, link-local or metadata; the project's and the workflow's lists add up.",
    "FilePolicy.podium_state": "File steps and tools may read and write Podium's own state: "
    "the workspace's `.podium/`, the store, the project configuration, the agents catalog "
    "(project configuration only).",
    "NetworkPolicy.allow": "Host names, `*.suffix` wildcards, IP addresses and CIDR networks "
    "(`api.internal`, `*.corp.example`, `127.0.0.1`, `10.0.0.0/8`).",
    "ApprovalRules.planned_shell": "A planner's shell steps (default on).",
    "ApprovalRules.planned_file_writes": "A planner's file write and append steps (default on).",
    "ApprovalRules.planned_http_writes": "A planner's http steps other than GET and HEAD "
    "(default on).",
    "ApprovalRules.planned_workflows": "A planner's `workflow` steps (default on).",
    "ApprovalRules.destructive_tools": "Each call of a tool marked destructive (default on).",
    "ApprovalRules.untrusted": "A step whose shell `run`/`cwd`, url host or file path splices "
    "untrusted text (http, agent, plan, workflow outputs and what derives from them; default "
    "on; only the project configuration turns it off).",
    "ApprovalRules.shell": "Every shell step, written or planned (default off).",
    "ApprovalRules.file_writes": "Every file write and append step (default off).",
    "ApprovalRules.http_writes": "Every http step other than GET and HEAD (default off).",
    "ApprovalRules.workflows": "Every `workflow` step (default off).",
    "ContextLimits.max_chars_per_dependency": "Each need's output is cut to this many characters.",
    "ContextLimits.max_dependencies": "At most this many needs' outputs are shown.",
    "ContextLimits.max_total_chars": "All the outputs together are cut to this many characters.",
    "AgentOptions.temperature": "Sampling temperature.",
    "AgentOptions.max_tokens": "At most this many output tokens per model call.",
    "AgentOptions.reasoning_effort": "For reasoning models.",
    "AgentOptions.seed": "A sampling seed, where the provider takes one.",
    "AgentOptions.top_p": "Nucleus sampling.",
    "AgentOptions.stop": "Up to four stop sequences (one string or a list).",
    "AgentOptions.tool_choice": "`auto`, `none`, `required` or a tool's name (forces the first "
    "turn only).",
    "AgentOptions.parallel_tool_calls": "Whether the model may call several tools in one turn.",
    "AgentOptions.timeout": "One model call's time limit (`30`, `500ms`, `30s`, `2m`).",
    "AgentOptions.provider": "A configured provider; `model` then names only the model.",
    "AgentOptions.stream": "Only `false` can be set: streaming is the default.",
}

# What a model without a docstring is, and the kinds whose default idempotence depends on a field.
MODEL_NOTES: dict[str, str] = {
    "InputSpec": "One entry of the workflow's `inputs:`, by name.",
    "Quorum": "`join: {quorum: N}`: the step starts once N of its needs have succeeded.",
}
IDEMPOTENT_NOTES: dict[str, str] = {
    "file": "`read` and `write`: yes; `append`: no",
    "http": "`GET`, `HEAD`, `PUT`, `DELETE`: yes; `POST`, `PATCH`: no",
}

# The scripted model's script keys, by where they appear (`podium.llm._script_file`).
SCRIPT_KEYS: dict[str, dict[str, str]] = {
    "top": {
        "model": "The model name reported in responses (default `scripted`).",
        "agents": "Agent name (any case) or `*` (any agent) → its turns.",
        "steps": "Step id → its turns, served in order whatever agent it runs; wins over "
        "`agents` (what `podium script RUN` writes).",
    },
    "agent": {
        "turns": "The replies, in order; a plain string is `{content: …}`.",
        "repeat_last": "Serve the last turn again when they run out (else the step fails). "
        "May also be a list item of its own: `- repeat_last: true`.",
    },
    "turn": {
        "content": "The reply text.",
        "json": "A reply given as data (serialised to JSON text); not with `content`.",
        "tool_calls": "Tools to call: a list of `{name, arguments, id}`.",
        "error": "Fail the model call instead: a message, or `{status, message, retryable, "
        "type}`; nothing else in the turn.",
        "usage": "`{input_tokens, output_tokens}` to report (default: estimated).",
        "delay_seconds": "Wait this long before answering.",
    },
    "call": {
        "name": "The tool's name (required).",
        "arguments": "Its arguments (a mapping).",
        "id": "The call id (default: one per turn).",
    },
    "error": {
        "status": "An HTTP status such as 429 or 500; sets the type and whether it is retried.",
        "message": "The error text.",
        "retryable": "Override whether the engine retries.",
        "type": "`rate_limit`, `timeout`, `server`, `auth`, `connection`, … (default from status).",
    },
    "usage": {
        "input_tokens": "Whole number ≥ 0.",
        "output_tokens": "Whole number ≥ 0.",
    },
}
