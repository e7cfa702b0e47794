"""Word lists the fleet generator composes realistic names, descriptions and failure causes from.

Kept apart from the generator so the data can grow without touching the logic.
"""

from __future__ import annotations

# (team / domain, purposes that make sense for it)
DOMAINS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ocr", ("invoice", "receipt", "idcard", "passport", "table", "handwriting", "license-plate")),
    ("fraud", ("scoring", "detector", "graph", "rules-shadow", "card-txn", "account-takeover")),
    ("llm", ("chat-gateway", "summarizer", "embedding", "rag-retriever", "code-assist", "moderation")),
    ("nlp", ("sentiment", "ner", "translator", "intent", "keyword", "spellcheck")),
    ("asr", ("transcriber", "diarization", "hotword", "call-center")),
    ("tts", ("voice", "narrator", "ivr")),
    ("vision", ("defect-detector", "face-match", "pose", "segmentation", "classifier", "counting")),
    ("recsys", ("ranker", "candidate-gen", "ctr", "similar-items", "next-best-offer")),
    ("churn", ("predictor", "propensity", "uplift")),
    ("pricing", ("optimizer", "elasticity", "forecast")),
    ("demand", ("forecast", "replenishment", "anomaly")),
    ("search", ("reranker", "query-rewrite", "autocomplete")),
    ("medical", ("xray-triage", "ecg-anomaly", "report-coder")),
    ("risk", ("credit-scoring", "kyc-check", "aml-monitor")),
    ("iot", ("predictive-maint", "sensor-anomaly", "energy-forecast")),
    ("ads", ("bidder", "ctr", "creative-ranker")),
)

ENVS: tuple[str, ...] = ("prod", "prod", "prod", "staging", "dev", "test", "canary")
REGIONS: tuple[str, ...] = ("eu", "cn", "ap", "us", "la")

DESCRIPTIONS: tuple[str, ...] = (
    "",
    "",
    "Serves the {team} team's {purpose} model",
    "{purpose} inference for {env}",
    "Owned by team {team}; pager rota in the wiki",
    "Shadow deployment, do not route customer traffic",
    "Migrated from the old cluster",
    "A/B test: candidate model vs baseline",
    "Nightly batch scoring job",
    "test cusom image",
)

MODEL_SUFFIXES: tuple[str, ...] = ("model", "bert", "resnet50", "xgb", "lgbm", "yolo", "qwen-7b", "t5", "onnx")

SPECIFICATIONS: tuple[str, ...] = (
    "modelarts.vm.cpu.2u",
    "modelarts.vm.cpu.2u",
    "modelarts.vm.cpu.8u",
    "modelarts.vm.gpu.p4",
    "modelarts.vm.gpu.t4",
    "modelarts.vm.ai1.a310",
    "custom",
)

FAILURES_REALTIME: tuple[str, ...] = (
    "Image pull failed: manifest for swr.cn-north-4.myhuaweicloud.com/{team}/{name}:{version} not found",
    "Image pull failed: unauthorized to access repository swr.cn-north-4.myhuaweicloud.com/{team}/{name}",
    "Insufficient resources in pool pool-{hex4}: requested {n} x {spec}, 0 available",
    "Insufficient resources in the public pool for flavor {spec}; try again later or use a dedicated pool",
    "Model health check failed: GET /health returned 503 after 20 retries",
    "Container exited with code 137 (OOMKilled): memory limit {mem} MiB exceeded",
    "Failed to download model from OBS: obs://ml-models/{team}/{name}/model.tar.gz (403 AccessDenied)",
    "Deployment timed out after 1200 s waiting for instances to become ready",
    "Failed to start the model process: ModuleNotFoundError: No module named 'torchvision'",
)

FAILURES_BATCH: tuple[str, ...] = (
    "Batch task failed: {n} of 4500 input files could not be parsed (mapping_type csv)",
    "Batch task failed: output path obs://ml-output/{team}/{name}/ is not writable (403 AccessDenied)",
    "Insufficient resources in pool pool-{hex4}: requested {n} x {spec}, 0 available",
)

FAILURES_EDGE: tuple[str, ...] = (
    "Edge node {node} is UNCONNECTED: heartbeat lost for 15 minutes",
    "Image pull failed on edge node {node}: no space left on device",
)

OS_CHOICES: tuple[tuple[str, str, str, str], ...] = (
    # os_type, os_name, os_version, arch
    ("Linux", "EulerOS", "2.0 SP9", "aarch64"),
    ("Linux", "Ubuntu", "22.04", "x86_64"),
    ("Linux", "CentOS", "7.9", "x86_64"),
)
