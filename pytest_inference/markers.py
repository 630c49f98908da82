"""The markers the plugin registers, as data: one per suite (a test's suite is its marker's name;
the folder under suites/ has the same name) and the others. No imports: plugin.py registers them,
session.suite_of reads them."""

MARKERS = {
    "coldstart": "cold-start suite: launch an inference server and time it to its first token",
    "warm": "warm-latency suite: TTFT, TPOT and throughput of a running endpoint",
    "drain": "drain suite: a server stopped the preStop way drops no in-flight stream",
    "serverless": "serverless suite: a remote OpenAI-compatible endpoint, idle-then-probe and warm",
    "economics": "economics suite: cost crossover between a GPU and a serverless endpoint",
    "storage": "storage suite: the model path's file system and its read throughput",
    "node": "node suite: network tuning of the host (MTU, TCP buffers, stale NFS connections)",
    "k8s": "Kubernetes suite: taint gate, tuner, HA and storage checks of a deployment",
    "load": "load suite: SLO attainment, goodput and latency under open-loop load, and the capacity at the SLO",
    "api": "API suite: OpenAI-compatible API behaviour of an endpoint",
}
#: markers that are no suite (session.suite_of reads MARKERS only)
READS_MARKER = "inference_reads"
OTHER_MARKERS = {
    READS_MARKER: "inference_reads(*names): the test reads measurements other tests publish "
    "(inference_session.measurements(name)); it runs after every test without this marker",
}
