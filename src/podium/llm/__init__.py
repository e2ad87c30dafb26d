"""Language models behind one `Model` protocol, chosen by a `provider:model` string."""
