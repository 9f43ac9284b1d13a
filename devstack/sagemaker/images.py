"""Recognise SageMaker image URIs and decide how (or whether) the devstack can run them.

Which images run, and in what environment, is decided by :mod:`devstack.sagemaker.catalogue`; this
module only tells what a URI names (family, repository, tag, registry account and region), so that an
image the devstack does not know fails its job with a ``ClientError`` naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Accounts that publish the scikit-learn and XGBoost (0.90-1 and later) images, per region.
SKLEARN_XGBOOST_ACCOUNTS = {
    "us-east-1": "683313688378",
    "us-east-2": "257758044811",
    "us-west-2": "246618743249",
    "eu-west-1": "141502667606",
    "eu-central-1": "492215442770",
    "ap-southeast-1": "121021644041",
    "ap-northeast-1": "354813040037",
}
#: Accounts that publish the legacy ``xgboost:1`` algorithm image, per region.
LEGACY_XGBOOST_ACCOUNTS = {
    "us-east-1": "811284229777",
    "us-east-2": "825641698319",
    "us-west-2": "433757028032",
    "eu-west-1": "685385470294",
    "eu-central-1": "813361260812",
    "ap-southeast-1": "475088953585",
    "ap-northeast-1": "501404015308",
}
#: Accounts that publish the Model Monitor analyzer image, per region.
MODEL_MONITOR_ACCOUNTS = {
    "us-east-1": "156813124566",
    "us-east-2": "777275614652",
    "us-west-2": "159807026194",
    "eu-west-1": "468650794304",
    "eu-central-1": "048819808253",
    "ap-southeast-1": "245545462676",
    "ap-northeast-1": "574779866223",
}
#: The Deep Learning Containers account in most commercial regions, and its exceptions.
DLC_ACCOUNT = "763104351884"
DLC_ACCOUNT_EXCEPTIONS = {
    "ap-east-1": "871362719292",
    "me-south-1": "217643126080",
    "af-south-1": "626614931356",
    "eu-south-1": "692866216735",
    "cn-north-1": "727897471807",
    "us-gov-west-1": "442386744353",
}

_ECR_URI = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[a-z0-9][a-z0-9._/-]*)(?::(?P<tag>[A-Za-z0-9._-]+))?(?:@sha256:[0-9a-f]{64})?$"
)
_VERSION_TAG = re.compile(r"^\d+(?:\.\d+)*(?:-\d+)?(?:-|$)")

#: repository -> (family, role). Roles: training, inference, both.
_FRAMEWORK_REPOSITORIES = {
    "sagemaker-scikit-learn": ("sklearn", "both"),
    "sagemaker-xgboost": ("xgboost", "both"),
    "pytorch-training": ("pytorch", "training"),
    "pytorch-inference": ("pytorch", "inference"),
    "tensorflow-training": ("tensorflow", "training"),
    "tensorflow-inference": ("tensorflow", "inference"),
    "huggingface-pytorch-training": ("huggingface", "training"),
    "huggingface-pytorch-inference": ("huggingface", "inference"),
    "huggingface-tensorflow-training": ("huggingface", "training"),
    "huggingface-tensorflow-inference": ("huggingface", "inference"),
}


@dataclass(frozen=True)
class ImageInfo:
    """What an image URI names.

    :param uri: the URI as given.
    :param family: ``sklearn``, ``xgboost``, ``pytorch``, ``tensorflow``, ``huggingface``,
        ``xgboost-legacy``, ``model-monitor`` or None for an image the devstack does not know.
    :param role: ``training``, ``inference`` or ``both`` for framework images.
    :param repository: the ECR repository name.
    :param tag: the tag (``latest`` when none was given).
    :param region: the registry region.
    :param account: the registry account.
    """

    uri: str
    family: str | None
    role: str | None
    repository: str | None
    tag: str | None
    region: str | None
    account: str | None

    @property
    def is_framework(self) -> bool:
        """Whether this is a framework script-mode image the devstack runs on the local Python."""
        return self.family in {"sklearn", "xgboost", "pytorch", "tensorflow", "huggingface"}

    @property
    def framework_version(self) -> str | None:
        """The framework version part of the tag (``1.2-1`` of ``1.2-1-cpu-py3``)."""
        if not self.tag:
            return None
        match = re.match(r"^\d+(?:\.\d+)*(?:-\d+)?", self.tag)
        return match.group(0) if match else None


def _dlc_account(region: str) -> str:
    return DLC_ACCOUNT_EXCEPTIONS.get(region, DLC_ACCOUNT)


def _account_matches(table: dict[str, str], region: str, account: str) -> bool:
    if region in table:
        return table[region] == account
    # Regions the table does not list: accept any of the publishing accounts we know.
    return account in set(table.values())


def parse_image_uri(uri: str) -> ImageInfo:
    """Classify an image URI.

    :param uri: e.g. ``683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3``.
    :return: an :class:`ImageInfo`; ``family`` is None when the devstack does not know the image.
    """
    match = _ECR_URI.match(uri.strip())
    if not match:
        return ImageInfo(uri, None, None, None, None, None, None)
    account, region, repository = match["account"], match["region"], match["repository"]
    tag = match["tag"] or "latest"
    unknown = ImageInfo(uri, None, None, repository, tag, region, account)
    if repository in ("sagemaker-scikit-learn", "sagemaker-xgboost"):
        if not _account_matches(SKLEARN_XGBOOST_ACCOUNTS, region, account) or not _VERSION_TAG.match(tag):
            return unknown
        family, role = _FRAMEWORK_REPOSITORIES[repository]
        return ImageInfo(uri, family, role, repository, tag, region, account)
    if repository == "xgboost":
        if _account_matches(LEGACY_XGBOOST_ACCOUNTS, region, account):
            return ImageInfo(uri, "xgboost-legacy", "both", repository, tag, region, account)
        return unknown
    if repository == "sagemaker-model-monitor-analyzer":
        if _account_matches(MODEL_MONITOR_ACCOUNTS, region, account):
            return ImageInfo(uri, "model-monitor", "processing", repository, tag, region, account)
        return unknown
    if repository in _FRAMEWORK_REPOSITORIES:
        if account != _dlc_account(region) or not _VERSION_TAG.match(tag):
            return unknown
        family, role = _FRAMEWORK_REPOSITORIES[repository]
        return ImageInfo(uri, family, role, repository, tag, region, account)
    return unknown


def cannot_run_message(image: ImageInfo, why: str) -> str:
    """Return the ``ClientError`` FailureReason for an image the devstack cannot run.

    :param image: the parsed image.
    :param why: what the devstack would have needed, appended to the message.
    """
    return f"ClientError: The image {image.uri} cannot be run by the devstack: {why}"
