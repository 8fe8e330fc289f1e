"""Not the runtime: the benchmark, the demo, the generated corpus, the JSONL producer."""
