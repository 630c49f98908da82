"""The API conformance suite's parts: probe, rules, checks, fuzzer, reference."""
