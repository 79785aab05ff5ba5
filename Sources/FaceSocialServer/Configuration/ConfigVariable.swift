import ModelRuntime

/// One environment variable the server reads. The list below is the single source for
/// `facesocial serve --help`, the startup validation and the README's configuration table.
public struct ConfigVariable: Sendable {
    public let name: String
    public let defaultValue: String
    public let summary: String

    public static let all: [ConfigVariable] =
        [
            .init(
                name: "FACESOCIAL_PROFILE", defaultValue: "development",
                summary: "development or production; production refuses default secrets and logs JSON lines"),
            .init(
                name: "FACESOCIAL_HOST", defaultValue: "127.0.0.1 (development), 0.0.0.0 (production)",
                summary: "address to listen on"),
            .init(name: "FACESOCIAL_PORT", defaultValue: "8000", summary: "TCP port to listen on"),
            .init(
                name: "FACESOCIAL_DATA_DIR", defaultValue: "var/data",
                summary: "folder for the embedded SQLite database"),
            .init(
                name: "DATABASE_URL", defaultValue: "(SQLite file in FACESOCIAL_DATA_DIR)",
                summary: "sqlite:///path/file.sqlite, or postgres://user:pass@host:5432/db"),
            .init(
                name: "JWT_SECRET_KEY", defaultValue: "(development: made per installation in the data folder)",
                summary: "secret that signs access tokens; production requires your own, at least 32 characters"),
            .init(
                name: "FACESOCIAL_DATA_KEY", defaultValue: "(development: made per installation in the data folder)",
                summary: "base64 of 32 bytes that encrypts embeddings at rest; production requires your own"),
            .init(
                name: "FACESOCIAL_DATA_KEY_ID", defaultValue: "(key fingerprint)",
                summary: "id stored with each row the current data key seals; name it to rotate keys"),
            .init(
                name: "FACESOCIAL_DATA_KEYS_OLD", defaultValue: "(none)",
                summary:
                    "retired data keys that still decrypt old rows: id:base64,... (see `facesocial keys rotate-data`)"),
            .init(
                name: "DATABASE_REPLICA_URLS", defaultValue: "(none)",
                summary: "comma-separated postgres:// read replicas for listings and gallery loads"),
            .init(
                name: "FACESOCIAL_REPLICA_MAX_LAG_MS", defaultValue: "1000",
                summary: "a replica further behind the primary than this is skipped"),
            .init(
                name: "FACESOCIAL_DB_STATEMENT_TIMEOUT_MS", defaultValue: "30000",
                summary:
                    "a PostgreSQL statement that hears nothing from the server this long fails with 503 and its connection is closed (0: no limit)"
            ),
            .init(
                name: "FACESOCIAL_DB_POOL_PER_LOOP", defaultValue: "1",
                summary:
                    "PostgreSQL connections per event loop (one loop per core), for the primary and each replica"),
            .init(
                name: "FACESOCIAL_DB_POOL_TIMEOUT_MS", defaultValue: "10000",
                summary: "how long a request waits for a free PostgreSQL primary connection before 503"),
            .init(
                name: "FACESOCIAL_GALLERY_POLL_MS", defaultValue: "500",
                summary:
                    "how often gallery changes by other instances are checked (SQLite; PostgreSQL also uses LISTEN)"),
            .init(
                name: "FACESOCIAL_GALLERY_APPROXIMATE_FROM", defaultValue: "500000",
                summary:
                    "from this many faces of one model in a collection, identify searches an 8-bit inverted-file index (recall@10 about 0.99) instead of every row"
            ),
            .init(
                name: "FACESOCIAL_GALLERY_REFINEMENT_BITS", defaultValue: "1",
                summary:
                    "bit planes (0-2) of what the inverted file's 8-bit steps round away, kept for the re-score: 16 bytes a face each; at 10M faces recall@10 0.982 / 0.990 / 0.994"
            ),
            .init(
                name: "FACESOCIAL_AUTO_MIGRATE", defaultValue: "true",
                summary: "apply pending database migrations at start; false leaves it to `facesocial migrate`"),
            .init(name: "FACESOCIAL_MODEL_DIR", defaultValue: "var/models", summary: "installed model files"),
            .init(
                name: "FACESOCIAL_MODEL_MANIFEST", defaultValue: "models/manifest.json",
                summary: "manifest listing every model with its SHA-256"),
            .init(
                name: "FACESOCIAL_MODEL_MIRROR", defaultValue: "(none)",
                summary: "folder to install models from instead of upstream (used by `models pull`)"),
            .init(
                name: ModelStore.acceptLicencesVariable, defaultValue: "(none)",
                summary:
                    "restricted model licences you accept, comma-separated: insightface-noncommercial installs and "
                    + "loads w600k_mbf, whose licence allows non-commercial research only (docs/models.md)"),
            .init(
                name: "FACESOCIAL_PRELOAD_MODELS", defaultValue: "(critical models)",
                summary: "comma-separated model ids loaded at start besides the critical ones"),
            .init(
                name: "FACESOCIAL_TUNE", defaultValue: "auto",
                summary:
                    "auto: choose each model's CPU precision and OpenVINO hint by a short measurement at its first load on a CPU not seen before (cached); off: manifest precision and LATENCY"
            ),
            .init(
                name: "FACESOCIAL_TUNING_FILE", defaultValue: "(tuning.json in FACESOCIAL_DATA_DIR)",
                summary:
                    "where measured tuning choices are kept, keyed by CPU model, cores, engine, model hash and the precision the manifest allows"
            ),
            .init(
                name: "FACESOCIAL_OV_PERFORMANCE_HINT", defaultValue: "(tuned)",
                summary:
                    "fix OpenVINO's performance hint for every model: LATENCY or THROUGHPUT (tuning then picks only the precision)"
            ),
            .init(
                name: "FACESOCIAL_OV_PRECISION", defaultValue: "(tuned)",
                summary:
                    "fix the CPU precision: f32, or bf16 for the models whose manifest entry allows it (tuning then picks only the hint)"
            ),
            .init(
                name: "FACESOCIAL_MAX_BODY_BYTES", defaultValue: "10485760", summary: "largest request body accepted"),
            .init(
                name: "FACESOCIAL_MAX_IMAGE_SIDE", defaultValue: "8000",
                summary: "largest image width or height, in pixels"
            ),
            .init(
                name: "FACESOCIAL_MAX_IMAGE_PIXELS", defaultValue: "40000000",
                summary: "largest decoded image area, in pixels"),
            .init(
                name: "FACESOCIAL_MAX_FACES", defaultValue: "100", summary: "upper bound for the max_faces parameter"),
            .init(
                name: "FACESOCIAL_VERIFY_THRESHOLD", defaultValue: "\(Thresholds.verify)",
                summary: "default cosine similarity for the same person in verify and identify (docs/thresholds.md)"),
            .init(
                name: "FACESOCIAL_LIVENESS_THRESHOLD", defaultValue: "\(Thresholds.liveness)",
                summary: "default real-minus-spoof margin for is_real"),
            .init(
                name: "FACESOCIAL_BATCH_MAX_IMAGES", defaultValue: "16",
                summary: "images in one /v1/batch/analyze or batch enrol request"),
            .init(
                name: "FACESOCIAL_BATCH_CONCURRENCY", defaultValue: "2",
                summary: "images of one batch request analysed at once"),
            .init(
                name: "FACESOCIAL_MODEL_FETCHER",
                defaultValue: "(scripts/models/fetch_upstream.py beside the manifest)",
                summary: "the script `facesocial models pull` runs to fetch model files from upstream"),
            .init(
                name: "FACESOCIAL_LOG_LEVEL", defaultValue: "info",
                summary: "trace, debug, info, notice, warning, error"),
            .init(name: "FACESOCIAL_LOG_FORMAT", defaultValue: "text (json in production)", summary: "text or json"),
            .init(
                name: "FACESOCIAL_DEVICES", defaultValue: "auto",
                summary:
                    "devices for models in order of preference, e.g. GPU,CPU (CPU is always last); auto: every OpenVINO accelerator, then CPU"
            ),
            .init(
                name: "FACESOCIAL_DEVICE_BUDGETS", defaultValue: "CPU=50%, accelerators 90%",
                summary: "memory budget per device: DEVICE=SIZE|PERCENT% (of its total), e.g. CPU=2GB,GPU=6GiB"),
            .init(
                name: "FACESOCIAL_POOLS", defaultValue: "(none: one default pool per device)",
                summary:
                    "named pools per device, carved from its budget: DEVICE:pool=SIZE|PERCENT%,…;DEVICE:…, e.g. CPU:critical=64MB,high=128MB,flexible=256MB; the rest is the device's default pool"
            ),
            .init(
                name: "FACESOCIAL_MODEL_PLACEMENT", defaultValue: "(from priority)",
                summary:
                    "placement and fallback order per model: model=DEVICE[:pool]>DEVICE[:pool]…;…, e.g. sface=GPU:high>CPU:high>CPU"
            ),
            .init(
                name: "FACESOCIAL_FOOTPRINT", defaultValue: "measure",
                summary:
                    "charge models their measured footprint (device memory or RSS delta at load) or their manifest estimate"
            ),
            .init(
                name: "FACESOCIAL_IDLE_TTL", defaultValue: "(never)",
                summary:
                    "unload idle models of a class after a while: high|standard|low=DURATION, e.g. standard=15m,low=5m (0 = never)"
            ),
            .init(
                name: "FACESOCIAL_QUEUE_LIMIT", defaultValue: "32",
                summary: "requests that may wait per model when all its slots are busy; beyond that 503 QUEUE_FULL"),
            .init(
                name: "FACESOCIAL_QUEUE_TIMEOUT_MS", defaultValue: "10000",
                summary: "longest wait in a model's queue before 503 QUEUE_FULL"),
            .init(
                name: "FACESOCIAL_BATCH_MAX", defaultValue: "1",
                summary:
                    "largest batch of faces per inference for the per-face models; 1 is off (measured slower on small CPUs)"
            ),
            .init(
                name: "FACESOCIAL_BATCH_WAIT_MS", defaultValue: "3",
                summary: "longest a face waits for others to join its batch, in milliseconds"),
        ] + EngineConfig.variables + SecurityConfig.variables
}
