// Checking an edit in the page before it is sent, against the JSON schema the server gives for
// it (a plan's schema, a step's fields, a tool's input schema): the subset those use — type,
// const, enum, anyOf/oneOf, $ref into $defs, properties, required, additionalProperties, items,
// lengths, pattern and bounds. Each problem has a path such as `steps[2].needs[0]`.

const TYPES = {
  string: (v) => typeof v === "string",
  integer: (v) => Number.isInteger(v),
  number: (v) => typeof v === "number",
  boolean: (v) => typeof v === "boolean",
  null: (v) => v === null,
  array: (v) => Array.isArray(v),
  object: (v) => typeof v === "object" && v !== null && !Array.isArray(v),
};

function resolve(schema, root) {
  while (schema && schema.$ref) {
    const name = schema.$ref.replace(/^#\/(\$defs|definitions)\//, "");
    schema = (root.$defs || root.definitions || {})[name];
  }
  return schema || {};
}

function join(path, key) {
  return typeof key === "number" ? `${path}[${key}]` : path ? `${path}.${key}` : key;
}

export function check(value, schema, root = schema, path = "") {
  schema = resolve(schema, root);
  const choices = schema.anyOf || schema.oneOf;
  if (choices) {
    const fits = choices.some((c) => check(value, c, root, path).length === 0);
    if (!fits) return [{ path, message: `not any of the allowed forms (${describe(choices, root)})` }];
  }
  const types = schema.type === undefined ? [] : [].concat(schema.type);
  if (types.length && !types.some((t) => TYPES[t] && TYPES[t](value))) {
    return [{ path, message: `should be ${types.join(" or ")}, not ${kind(value)}` }];
  }
  if ("const" in schema && value !== schema.const) return [{ path, message: `should be ${JSON.stringify(schema.const)}` }];
  if (schema.enum && !schema.enum.includes(value)) {
    return [{ path, message: `should be one of ${schema.enum.map((e) => JSON.stringify(e)).join(", ")}` }];
  }
  return [...scalar(value, schema, path), ...nested(value, schema, root, path)];
}

function scalar(value, schema, path) {
  const problems = [];
  const say = (message) => problems.push({ path, message });
  if (typeof value === "string") {
    if (schema.minLength !== undefined && value.length < schema.minLength) say(`at least ${schema.minLength} characters`);
    if (schema.maxLength !== undefined && value.length > schema.maxLength) say(`at most ${schema.maxLength} characters`);
    if (schema.pattern && !matches(schema.pattern, value)) say(`should match ${schema.pattern}`);
  }
  if (typeof value === "number") {
    if (schema.minimum !== undefined && value < schema.minimum) say(`at least ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) say(`at most ${schema.maximum}`);
    if (schema.exclusiveMinimum !== undefined && value <= schema.exclusiveMinimum) say(`more than ${schema.exclusiveMinimum}`);
  }
  return problems;
}

// A pattern JavaScript cannot read (Python's own syntax) is left to the server to check.
function matches(pattern, value) {
  try {
    return new RegExp(pattern, "u").test(value);
  } catch {
    return true;
  }
}

function nested(value, schema, root, path) {
  const problems = [];
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) problems.push({ path, message: `at least ${schema.minItems} items` });
    if (schema.maxItems !== undefined && value.length > schema.maxItems) problems.push({ path, message: `at most ${schema.maxItems} items` });
    if (schema.items) value.forEach((item, i) => problems.push(...check(item, schema.items, root, join(path, i))));
  } else if (TYPES.object(value)) {
    const properties = schema.properties || {};
    for (const name of schema.required || []) {
      if (!(name in value)) problems.push({ path: join(path, name), message: "is required" });
    }
    for (const [name, item] of Object.entries(value)) {
      if (name in properties) problems.push(...check(item, properties[name], root, join(path, name)));
      else if (schema.additionalProperties === false) {
        const known = Object.keys(properties).join(", ");
        problems.push({ path: join(path, name), message: `is not a field here; the fields are ${known}` });
      } else if (typeof schema.additionalProperties === "object") {
        problems.push(...check(item, schema.additionalProperties, root, join(path, name)));
      }
    }
  }
  return problems;
}

function kind(value) {
  return Object.keys(TYPES).find((t) => t !== "integer" && TYPES[t](value)) || typeof value;
}

function describe(choices, root) {
  return choices.map((c) => [].concat(resolve(c, root).type || "object").join("/")).join(", ");
}

// A plan also needs unique step ids and `needs` that name its own steps.
export function checkPlan(plan, schema) {
  const problems = check(plan, schema);
  if (!TYPES.object(plan) || !Array.isArray(plan.steps)) return problems;
  const steps = plan.steps.map((step) => (TYPES.object(step) ? step : {}));
  const ids = new Set();
  steps.forEach((step, i) => {
    if (step.id !== undefined && ids.has(step.id)) problems.push({ path: `steps[${i}].id`, message: `id ${JSON.stringify(step.id)} is used twice` });
    ids.add(step.id);
  });
  steps.forEach((step, i) =>
    [].concat(step.needs || []).forEach((need, j) => {
      if (!ids.has(need)) problems.push({ path: `steps[${i}].needs[${j}]`, message: `no step ${JSON.stringify(need)} in this plan` });
    }),
  );
  return problems;
}

// A step's edit replaces some of its fields: each must be one of them and fit its schema.
export function checkFields(edit, schema) {
  if (!TYPES.object(edit)) return [{ path: "", message: "an edit is an object of the fields to replace" }];
  const properties = resolve(schema, schema).properties || {};
  const problems = [];
  for (const [name, value] of Object.entries(edit)) {
    if (name === "id" || name === "kind") problems.push({ path: name, message: `the step's ${name} cannot be edited` });
    else if (!(name in properties)) problems.push({ path: name, message: `is not a field of this step; the fields are ${Object.keys(properties).join(", ")}` });
    else problems.push(...check(value, properties[name], schema, name));
  }
  return problems;
}

// JSON.parse with the line and column of a syntax error.
export function parseJson(text) {
  try {
    return { value: JSON.parse(text), problems: [] };
  } catch (error) {
    const at = /position (\d+)/.exec(error.message);
    let where = "";
    if (at) {
      const before = text.slice(0, Number(at[1])).split("\n");
      where = ` (line ${before.length}, column ${before[before.length - 1].length + 1})`;
    }
    return { value: undefined, problems: [{ path: "", message: `not JSON${where}: ${error.message}` }] };
  }
}
