"""Share the model on the Hugging Face Hub: model card, allow-listed upload, tag, pull back, verify.

    card = build_model_card(config, metrics, repo_id)          # YAML metadata + text, offline
    folder = prepare_upload_folder(out_dir, onnx, ckpt, card, config, metrics)
    result = push_folder(folder, repo_id, tag="v1")           # create repo, upload, tag
    path = pull_model(result.repo_id, result.revision)        # hf_hub_download, pinned
    share_model(...)                                          # all of it, for the notebook

One module per job: ``auth`` (token, endpoint, errors), ``card`` (model card), ``plan``
(allow-list, credential skipping, the folder to upload), ``push`` (versioned push), ``pull``
(download + verify), ``local_server`` (an in-memory Hub on 127.0.0.1, standard library only),
``share`` (the notebook's one call: the learner's Hub with a token, else a local Hub started for
the call). Imports run one way: auth, card, plan, local_server <- push, pull <- share.

``huggingface_hub`` is imported inside the functions only: it reads ``HF_ENDPOINT`` once, at
import, and ``import utils.hub`` must not fix it before a caller (or conftest.py) sets it.
``HF_ENDPOINT`` points everything at another server, e.g. the tests' local Hub; the functions
here also take ``endpoint=``, which is how ``share_model`` talks to the Hub it started.
"""

from .auth import (
    PUBLIC_ENDPOINT,
    InvalidRepoIdError,
    MissingTokenError,
    TagExistsError,
    TokenPermissionError,
    TokenRejectedError,
    describe_token,
    endpoint_label,
    get_token,
    hub_endpoint,
    hub_reachable,
    token_and_source,
    whoami,
)
from .card import (
    DATASET_ID,
    build_model_card,
    class_rows,
    training_summary,
)
from .plan import (
    ALLOW_PATTERNS,
    IGNORE_PATTERNS,
    SPACE_ALLOW_PATTERNS,
    STATIC_SPACE_ALLOW_PATTERNS,
    UPLOAD_DIR_NAME,
    describe_plan,
    prepare_upload_folder,
    skipped_credentials,
    upload_plan,
)
from .pull import pull_model, verify_roundtrip
from .push import (
    PushResult,
    push_folder,
)
from .share import DEFAULT_REPO_NAME, share_model

__all__ = [
    "ALLOW_PATTERNS",
    "DATASET_ID",
    "DEFAULT_REPO_NAME",
    "IGNORE_PATTERNS",
    "PUBLIC_ENDPOINT",
    "SPACE_ALLOW_PATTERNS",
    "STATIC_SPACE_ALLOW_PATTERNS",
    "UPLOAD_DIR_NAME",
    "InvalidRepoIdError",
    "MissingTokenError",
    "PushResult",
    "TagExistsError",
    "TokenPermissionError",
    "TokenRejectedError",
    "build_model_card",
    "class_rows",
    "describe_plan",
    "describe_token",
    "endpoint_label",
    "get_token",
    "hub_endpoint",
    "hub_reachable",
    "prepare_upload_folder",
    "pull_model",
    "push_folder",
    "share_model",
    "skipped_credentials",
    "token_and_source",
    "training_summary",
    "upload_plan",
    "verify_roundtrip",
    "whoami",
]
