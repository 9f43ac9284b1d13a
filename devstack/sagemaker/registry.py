"""Model registry (model package groups and versioned model packages), models, and tags.

Errors follow what SageMaker answers: duplicates and unknown names of groups, packages and models are
``ValidationException`` with SageMaker's messages (the Airflow provider matches
``Model Package Group already exists`` to treat an existing group as success).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from devstack.sagemaker.common import Listing, descriptions, echoed_members, now, page_response, pick, require
from devstack.sagemaker.errors import conflict, resource_not_found, validation_error
from devstack.sagemaker.events import MODEL_PACKAGE_STATE_CHANGE, model_package_detail, package_state_changed

if TYPE_CHECKING:
    from devstack.sagemaker.service_api import ServiceApi as SageMakerService

GROUPS = "model-package-groups"
PACKAGES = "model-packages"
MODELS = "models"

_ARN = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):(?P<type>[a-z-]+)/(?P<rest>.+)$"
)

#: ARN resource type -> (store kind, how the record is keyed: by name or by ARN).
_TAGGABLE = {
    "training-job": ("training-jobs", "name"),
    "processing-job": ("processing-jobs", "name"),
    "hyper-parameter-tuning-job": ("tuning-jobs", "name"),
    "model": (MODELS, "name"),
    "model-package-group": (GROUPS, "name"),
    "model-package": (PACKAGES, "arn"),
}


GROUP_LISTING = Listing(
    "ModelPackageGroupSummaryList",
    "ModelPackageGroupName",
    (
        "ModelPackageGroupName",
        "ModelPackageGroupArn",
        "ModelPackageGroupDescription",
        "CreationTime",
        "ModelPackageGroupStatus",
    ),
    default_order="Ascending",
)
#: versions of one group sort by their version number within equal names or creation times
PACKAGE_LISTING = Listing(
    "ModelPackageSummaryList",
    "ModelPackageName",
    (
        "ModelPackageName",
        "ModelPackageGroupName",
        "ModelPackageVersion",
        "ModelPackageArn",
        "ModelPackageDescription",
        "CreationTime",
        "ModelPackageStatus",
        "ModelApprovalStatus",
        "ModelLifeCycle",
        "ModelPackageRegistrationType",
    ),
    sort_keys={
        "Name": lambda d: (d["ModelPackageName"], d.get("ModelPackageVersion", 0)),
        "CreationTime": lambda d: (d["CreationTime"], d.get("ModelPackageVersion", 0)),
    },
    default_order="Ascending",
)
MODEL_LISTING = Listing("Models", "ModelName", ("ModelName", "ModelArn", "CreationTime"))


class Registry:
    """Model package groups, model packages, models and tags.

    :param service: the owning service.
    """

    def __init__(self, service: SageMakerService) -> None:
        self.service = service
        store = service.store
        self.store = store
        self._package_echo = echoed_members(service, "CreateModelPackage", "DescribeModelPackage")
        self._model_echo = echoed_members(service, "CreateModel", "DescribeModel")

    def register(self) -> None:
        """Register the actions with the service."""
        actions = {
            "CreateModelPackageGroup": self.create_model_package_group,
            "DescribeModelPackageGroup": self.describe_model_package_group,
            "ListModelPackageGroups": self.list_model_package_groups,
            "DeleteModelPackageGroup": self.delete_model_package_group,
            "CreateModelPackage": self.create_model_package,
            "DescribeModelPackage": self.describe_model_package,
            "ListModelPackages": self.list_model_packages,
            "UpdateModelPackage": self.update_model_package,
            "DeleteModelPackage": self.delete_model_package,
            "CreateModel": self.create_model,
            "DescribeModel": self.describe_model,
            "ListModels": self.list_models,
            "DeleteModel": self.delete_model,
            "AddTags": self.add_tags,
            "ListTags": self.list_tags,
            "DeleteTags": self.delete_tags,
        }
        for action, handler in actions.items():
            self.service.register_action(action, handler)

    # -- model package groups ----------------------------------------------------------------------

    def _group_name(self, value: str) -> str:
        match = _ARN.match(value)
        if match and match["type"] == "model-package-group":
            return match["rest"]
        return value

    def create_model_package_group(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle CreateModelPackageGroup."""
        name = params["ModelPackageGroupName"]
        arn = self.service.arn("model-package-group", name)
        created = now()
        desc = {
            "ModelPackageGroupName": name,
            "ModelPackageGroupArn": arn,
            "CreationTime": created,
            "ModelPackageGroupStatus": "Completed",
            # Who created it: SageMaker fills this from Studio user profiles; API callers get an empty context.
            "CreatedBy": {},
        }
        if params.get("ModelPackageGroupDescription"):
            desc["ModelPackageGroupDescription"] = params["ModelPackageGroupDescription"]
        if not self.store.insert_new(GROUPS, name, {"desc": desc, "next_version": 1}):
            raise validation_error(f"Model Package Group already exists: {arn}")
        self.service.set_tags(arn, params.get("Tags"))
        return {"ModelPackageGroupArn": arn}

    def _group(self, value: str) -> dict[str, Any]:
        name = self._group_name(value)
        return require(self.store.get(GROUPS, name), validation_error(f"ModelPackageGroup {name} does not exist."))

    def describe_model_package_group(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle DescribeModelPackageGroup (unknown: ValidationException)."""
        return self._group(params["ModelPackageGroupName"])["desc"]

    def list_model_package_groups(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle ListModelPackageGroups."""
        return GROUP_LISTING.answer(descriptions(self.store, GROUPS), params)

    def delete_model_package_group(self, params: dict[str, Any]) -> None:
        """Handle DeleteModelPackageGroup: refused (ConflictException) while the group holds versions."""
        with self.store.lock:
            record = self._group(params["ModelPackageGroupName"])
            name = record["desc"]["ModelPackageGroupName"]
            remaining = [p for p in self.store.values(PACKAGES) if p["desc"].get("ModelPackageGroupName") == name]
            if remaining:
                raise conflict(
                    f"Model Package Group {name} still contains {len(remaining)} model package(s); "
                    "delete them before deleting the group."
                )
            self.store.delete(GROUPS, name)
        self.service.delete_tags_of(record["desc"]["ModelPackageGroupArn"])

    # -- model packages --------------------------------------------------------------------------

    def create_model_package(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle CreateModelPackage: a new version in a group, or an unversioned package by name."""
        group_value = params.get("ModelPackageGroupName")
        name = params.get("ModelPackageName")
        if bool(group_value) == bool(name):
            raise validation_error("Exactly one of ModelPackageName and ModelPackageGroupName must be provided.")
        created = now()
        desc: dict[str, Any] = pick(params, self._package_echo)
        desc.update(
            {
                "CreationTime": created,
                "LastModifiedTime": created,
                "ModelPackageStatus": "Completed",
                "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
                "CertifyForMarketplace": params.get("CertifyForMarketplace", False),
            }
        )
        with self.store.lock:
            if group_value:
                group = self._group(group_value)
                group_name = group["desc"]["ModelPackageGroupName"]
                version = group["next_version"]
                arn = self.service.arn("model-package", f"{group_name}/{version}")
                desc.update(
                    {
                        "ModelPackageName": group_name,
                        "ModelPackageGroupName": group_name,
                        "ModelPackageVersion": version,
                        "ModelPackageArn": arn,
                        "ModelApprovalStatus": params.get("ModelApprovalStatus", "PendingManualApproval"),
                    }
                )
                self.store.update(GROUPS, group_name, lambda r: r.__setitem__("next_version", version + 1))
            else:
                assert name is not None
                arn = self.service.arn("model-package", name)
                if self.store.exists(PACKAGES, arn):
                    raise validation_error(f"ModelPackage already exists: {arn}")
                desc.update({"ModelPackageName": name, "ModelPackageArn": arn})
                desc.pop("ModelApprovalStatus", None)
            self.store.put(PACKAGES, arn, {"desc": desc})
        self.service.set_tags(arn, params.get("Tags"))
        self._publish(desc)
        return {"ModelPackageArn": arn}

    def _publish(self, desc: dict[str, Any]) -> None:
        """Send the package's "Model Package State Change" event (best-effort, as SageMaker does)."""
        self.service.events.emit(MODEL_PACKAGE_STATE_CHANGE, desc["ModelPackageArn"], model_package_detail(desc))

    def _package(self, value: str) -> dict[str, Any]:
        """Find a package by ARN, by unversioned name, or by ``<group>/<version>``."""
        candidates = [value]
        if not value.startswith("arn:"):
            candidates.append(self.service.arn("model-package", value))
        for candidate in candidates:
            record = self.store.get(PACKAGES, candidate)
            if record is not None:
                return record
        raise validation_error(f"ModelPackage {value} does not exist.")

    def describe_model_package(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle DescribeModelPackage (by ARN or name; unknown: ValidationException)."""
        return self._package(params["ModelPackageName"])["desc"]

    def list_model_packages(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle ListModelPackages.

        With ``ModelPackageGroupName`` the versions of that group are listed; without it
        ``ModelPackageType`` selects (default ``Unversioned``, as documented).
        """
        descs = [r["desc"] for r in self.store.values(PACKAGES)]
        group_value = params.get("ModelPackageGroupName")
        package_type = params.get("ModelPackageType")
        if group_value:
            group_name = self._group_name(group_value)
            descs = [d for d in descs if d.get("ModelPackageGroupName") == group_name]
            if package_type == "Unversioned":
                descs = []
        else:
            package_type = package_type or "Unversioned"
            if package_type == "Versioned":
                descs = [d for d in descs if "ModelPackageGroupName" in d]
            elif package_type == "Unversioned":
                descs = [d for d in descs if "ModelPackageGroupName" not in d]
        if params.get("ModelApprovalStatus"):
            descs = [d for d in descs if d.get("ModelApprovalStatus") == params["ModelApprovalStatus"]]
        return PACKAGE_LISTING.answer(descs, params)

    def update_model_package(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle UpdateModelPackage: approval, metadata (add/remove), inference specifications."""
        record = self._package(params["ModelPackageArn"])
        arn = record["desc"]["ModelPackageArn"]
        to_remove = params.get("CustomerMetadataPropertiesToRemove", [])
        to_set = params.get("CustomerMetadataProperties", {})
        overlap = sorted(set(to_remove) & set(to_set))
        if overlap:
            raise validation_error(
                f"CustomerMetadataProperties and CustomerMetadataPropertiesToRemove both name {overlap}."
            )

        def change(rec: dict[str, Any]) -> None:
            desc = rec["desc"]
            if "ModelApprovalStatus" in params:
                if "ModelPackageGroupName" not in desc:
                    raise validation_error("ModelApprovalStatus can only be set on versioned model packages.")
                desc["ModelApprovalStatus"] = params["ModelApprovalStatus"]
            for member in (
                "ApprovalDescription",
                "InferenceSpecification",
                "SourceUri",
                "ModelCard",
                "ModelLifeCycle",
            ):
                if member in params:
                    desc[member] = params[member]
            if "ModelPackageRegistrationType" in params:
                desc["ModelPackageRegistrationType"] = params["ModelPackageRegistrationType"]
            metadata = dict(desc.get("CustomerMetadataProperties", {}))
            metadata.update(to_set)
            for key in to_remove:
                metadata.pop(key, None)
            if metadata:
                desc["CustomerMetadataProperties"] = metadata
            else:
                desc.pop("CustomerMetadataProperties", None)
            if params.get("AdditionalInferenceSpecificationsToAdd"):
                existing = desc.setdefault("AdditionalInferenceSpecifications", [])
                names = {spec["Name"] for spec in existing}
                for spec in params["AdditionalInferenceSpecificationsToAdd"]:
                    if spec["Name"] in names:
                        raise validation_error(f"AdditionalInferenceSpecification {spec['Name']} already exists.")
                    existing.append(spec)
            desc["LastModifiedTime"] = now()

        after = self.store.update(PACKAGES, arn, change)["desc"]
        if package_state_changed(record["desc"], after):
            self._publish(after)
        return {"ModelPackageArn": arn}

    def delete_model_package(self, params: dict[str, Any]) -> None:
        """Handle DeleteModelPackage (by ARN or name)."""
        record = self._package(params["ModelPackageName"])
        arn = record["desc"]["ModelPackageArn"]
        self.store.delete(PACKAGES, arn)
        self.service.delete_tags_of(arn)

    # -- models ----------------------------------------------------------------------------------

    def create_model(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle CreateModel."""
        name = params["ModelName"]
        arn = self.service.arn("model", name)
        if not params.get("PrimaryContainer") and not params.get("Containers"):
            raise validation_error("Either PrimaryContainer or Containers must be provided.")
        desc: dict[str, Any] = pick(params, self._model_echo)
        desc.update(
            {
                "ModelName": name,
                "ModelArn": arn,
                "CreationTime": now(),
                "EnableNetworkIsolation": params.get("EnableNetworkIsolation", False),
            }
        )
        if not self.store.insert_new(MODELS, name, {"desc": desc}):
            raise validation_error(f'Cannot create already existing model "{arn}".')
        self.service.set_tags(arn, params.get("Tags"))
        return {"ModelArn": arn}

    def describe_model(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle DescribeModel (unknown: ValidationException)."""
        name = params["ModelName"]
        missing = validation_error(f'Could not find model "{self.service.arn("model", name)}".')
        return require(self.store.get(MODELS, name), missing)["desc"]

    def list_models(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle ListModels (default order: newest first, as documented)."""
        return MODEL_LISTING.answer(descriptions(self.store, MODELS), params)

    def delete_model(self, params: dict[str, Any]) -> None:
        """Handle DeleteModel (unknown: ValidationException)."""
        name = params["ModelName"]
        arn = self.service.arn("model", name)
        if not self.store.delete(MODELS, name):
            raise validation_error(f'Could not find model "{arn}".')
        self.service.delete_tags_of(arn)

    # -- tags ------------------------------------------------------------------------------------

    def _check_arn(self, arn: str) -> None:
        match = _ARN.match(arn)
        if not match:
            raise validation_error(f"Invalid ARN: {arn}")
        if match["region"] != self.service.region or match["account"] != self.service.account_id:
            raise validation_error(f"ARN {arn} is not in this account and region.")
        known = _TAGGABLE.get(match["type"])
        if known is None:
            return
        kind, keyed_by = known
        key = arn if keyed_by == "arn" else match["rest"]
        if not self.store.exists(kind, key):
            raise resource_not_found(f"Resource {arn} does not exist.")

    def add_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle AddTags."""
        arn = params["ResourceArn"]
        self._check_arn(arn)
        self.service.set_tags(arn, params["Tags"])
        return {"Tags": self.service.tags_for(arn)}

    def list_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        """Handle ListTags."""
        arn = params["ResourceArn"]
        self._check_arn(arn)
        return page_response(self.service.tags_for(arn), params, "Tags", default_max=50)

    def delete_tags(self, params: dict[str, Any]) -> None:
        """Handle DeleteTags."""
        arn = params["ResourceArn"]
        self._check_arn(arn)
        keys = set(params["TagKeys"])
        with self.store.lock:
            remaining = [t for t in self.service.tags_for(arn) if t["Key"] not in keys]
            if remaining:
                self.store.put("tags", arn, {"Tags": remaining})
            else:
                self.service.delete_tags_of(arn)
