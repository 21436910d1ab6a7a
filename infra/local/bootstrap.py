"""The local AWS stack: a Redis, an AWS endpoint on 127.0.0.1:4566 and the resources of ``template.yaml``.

    python infra/local/bootstrap.py up [--aws-port 4566] [--start-redis] [--parameter ExchangeId=okx]
    python infra/local/bootstrap.py down

``up`` (idempotent):
1. Redis: ``--redis-url`` / ``REDIS_URL`` if it answers, else 127.0.0.1:6379 if it answers, else Debian's
   ``redis-server`` on a free loopback port (``--start-redis`` forces this), pidfile in the state dir.
2. AWS on 127.0.0.1:<port>: a LocalStack that answers ``/_localstack/health``, else a ``moto_server`` that
   already answers there, else a new ``moto_server`` in the background (pidfile in the state dir).
3. The resources that template.yaml declares and that the endpoint can hold (DynamoDB tables, Secrets
   Manager secrets, SQS queues), created with boto3 from the template's own properties; existing ones are
   left as they are. Lambda functions and layers are skipped: moto cannot run their code (run a handler with
   ``zvt-pipeline invoke``, or use LocalStack + samlocal: infra/localstack/README.md).
4. Prints ``export NAME=value`` lines on stdout (progress goes to stderr), so ``eval "$(infra/local/up)"``
   points the code at the stack; the same lines are saved in ``<state dir>/env``.

``down`` stops what ``up`` started (by its pidfiles, checking the process is still that program) and
nothing else: a LocalStack, a reused moto_server or the machine's Redis keep running.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
HOST = "127.0.0.1"
DEFAULT_AWS_PORT = 4566
"""The LocalStack edge port; ``--aws-port`` / ``ZVT_LOCAL_AWS_PORT`` override it."""
DEFAULT_STATE_DIR = REPO / ".zvt-pipeline" / "local-stack"
"""Pidfiles, logs and the env file; ``--state-dir`` / ``ZVT_LOCAL_STATE_DIR`` override it."""
STACK_NAME = "zvt"
"""Local stand-in for ``AWS::StackName``: the table becomes ``zvt-events``, Settings' default table name."""
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
"""moto's and LocalStack's default account."""
LOCAL_PARAMETERS = {
    "RedisTls": "false",
    "TableDeletionProtection": "false",
    # So that the exchange-key secret exists locally too (zvt/exchange/binance, empty keys).
    "ExchangeId": "binance",
}
"""Template parameters that differ from the template's defaults on a laptop; ``--parameter`` overrides."""
START_SECONDS = 30.0
STOP_SECONDS = 10.0


def log(message: str) -> None:
    print(f"[local-stack] {message}", file=sys.stderr, flush=True)


# --- template.yaml -------------------------------------------------------------------------------------


class NoValue:
    """``AWS::NoValue``: the property or list item disappears."""


NO_VALUE = NoValue()


class Unresolvable(ValueError):
    """An intrinsic that only CloudFormation can evaluate (``Fn::GetAtt`` of a resource, ...)."""


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """template.yaml with its short tags (``!Ref``, ``!Sub`` ...) as the long JSON forms."""
    from cfnlint.decode import decode_str

    template, matches = decode_str(path.read_text())
    if matches or template is None:
        raise ValueError(f"{path}: {'; '.join(str(m) for m in matches)}")
    return dict(template)


@dataclass
class TemplateContext:
    """Evaluates the intrinsics of one template for given parameter values and a stack name."""

    template: Mapping[str, Any]
    overrides: Mapping[str, str] = field(default_factory=dict)
    stack_name: str = STACK_NAME
    region: str = REGION
    account_id: str = ACCOUNT_ID
    physical_ids: dict[str, str] = field(default_factory=dict)
    """``Ref`` of resources already created (logical id -> name/ARN), filled in as resources are made."""
    symbolic: bool = False
    """Render what only CloudFormation knows (``Fn::GetAtt``, a ``Ref`` to a resource not created) as
    ``${Name.Attr}`` text instead of failing: for inspecting the template, never for creating things."""

    def __post_init__(self) -> None:
        declared = self.template.get("Parameters", {})
        unknown = set(self.overrides) - set(declared)
        if unknown:
            raise ValueError(f"unknown template parameters: {', '.join(sorted(unknown))}")
        self.parameters: dict[str, Any] = {}
        for name, spec in declared.items():
            value = self.overrides.get(name, spec.get("Default"))
            if value is not None:
                value = str(value)
                self.parameters[name] = value.split(",") if spec["Type"] == "CommaDelimitedList" else value

    def pseudo(self, name: str) -> Any:
        values = {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }
        if name in values:
            return values[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.physical_ids:
            return self.physical_ids[name]
        if name in self.template.get("Parameters", {}):
            raise Unresolvable(f"parameter {name} has no default: pass --parameter {name}=...")
        if self.symbolic:
            return f"${{{name}}}"
        raise Unresolvable(f"Ref {name}")

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def resolve(self, node: Any) -> Any:
        """``node`` with every intrinsic evaluated; ``NO_VALUE`` entries dropped from maps and lists."""
        if isinstance(node, list):
            items = [self.resolve(item) for item in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self.pseudo(arg)
            if key == "Condition" and isinstance(arg, str):
                return self.condition(arg)
            if key.startswith("Fn::"):
                return self._function(key, arg)
        out = {}
        for key, value in node.items():
            resolved = self.resolve(value)
            if resolved is not NO_VALUE:
                out[key] = resolved
        return out

    def _function(self, name: str, arg: Any) -> Any:
        if name == "Fn::If":
            cond, then, otherwise = arg
            return self.resolve(then if self.condition(cond) else otherwise)
        if name == "Fn::Equals":
            left, right = (self.resolve(a) for a in arg)
            return str(left) == str(right)
        if name == "Fn::Not":
            return not self.resolve(arg[0])
        if name == "Fn::And":
            return all(self.resolve(a) for a in arg)
        if name == "Fn::Or":
            return any(self.resolve(a) for a in arg)
        if name == "Fn::Join":
            sep, items = arg
            return str(sep).join(str(i) for i in self.resolve(items))
        if name == "Fn::Sub":
            text, local = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
            return self._sub(text, local)
        if name == "Fn::GetAtt" and self.symbolic:
            return "${" + ".".join(arg if isinstance(arg, list) else [arg]) + "}"
        raise Unresolvable(f"{name} {arg!r}")

    def _sub(self, text: str, local: Mapping[str, Any]) -> str:
        out, rest = [], text
        while "${" in rest:
            before, _, after = rest.partition("${")
            ref, _, rest = after.partition("}")
            out.append(before)
            if ref.startswith("!"):  # ${!Literal} is the escape for a literal "${Literal}"
                out.append("${" + ref[1:] + "}")
            elif ref in local:
                out.append(str(local[ref]))
            else:
                out.append(str(self.pseudo(ref)))
        return "".join(out) + rest

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        """Resolved ``Properties`` of every resource of that type whose ``Condition`` holds."""
        found = {}
        for logical_id, resource in self.template.get("Resources", {}).items():
            if resource.get("Type") != resource_type:
                continue
            if "Condition" in resource and not self.condition(resource["Condition"]):
                continue
            found[logical_id] = self.resolve(resource.get("Properties", {}))
        return found


def table_create_kwargs(properties: Mapping[str, Any]) -> dict[str, Any]:
    """``AWS::DynamoDB::Table`` properties -> ``dynamodb.create_table`` kwargs (point-in-time recovery is a
    separate call: ``update_continuous_backups``)."""
    kwargs: dict[str, Any] = {}
    for key in (
        "TableName",
        "AttributeDefinitions",
        "KeySchema",
        "BillingMode",
        "GlobalSecondaryIndexes",
        "LocalSecondaryIndexes",
        "ProvisionedThroughput",
    ):
        if key in properties:
            kwargs[key] = properties[key]
    if "StreamSpecification" in properties:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, **properties["StreamSpecification"]}
    if "SSESpecification" in properties:
        kwargs["SSESpecification"] = {"Enabled": _bool(properties["SSESpecification"].get("SSEEnabled"))}
    if "DeletionProtectionEnabled" in properties:
        kwargs["DeletionProtectionEnabled"] = _bool(properties["DeletionProtectionEnabled"])
    return kwargs


def _bool(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


# --- resources -----------------------------------------------------------------------------------------


def _client_error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def create_table(client: Any, properties: Mapping[str, Any]) -> str:
    kwargs = table_create_kwargs(properties)
    name = kwargs["TableName"]
    try:
        client.create_table(**kwargs)
        log(f"dynamodb: created table {name}")
    except Exception as exc:
        if _client_error_code(exc) != "ResourceInUseException":
            raise
        log(f"dynamodb: table {name} exists")
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    pitr = properties.get("PointInTimeRecoverySpecification", {})
    if _bool(pitr.get("PointInTimeRecoveryEnabled")):
        client.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    return str(name)


def create_secret(client: Any, properties: Mapping[str, Any]) -> str:
    name = properties["Name"]
    try:
        arn = client.create_secret(
            Name=name,
            Description=properties.get("Description", ""),
            SecretString=properties.get("SecretString", "{}"),
        )["ARN"]
        log(f"secretsmanager: created secret {name}")
    except Exception as exc:
        if _client_error_code(exc) != "ResourceExistsException":
            raise
        # Keep its value: someone may have put real (test) keys in it.
        arn = client.describe_secret(SecretId=name)["ARN"]
        log(f"secretsmanager: secret {name} exists")
    return str(arn)


def create_queue(client: Any, properties: Mapping[str, Any]) -> str:
    attributes = {}
    if "MessageRetentionPeriod" in properties:
        attributes["MessageRetentionPeriod"] = str(properties["MessageRetentionPeriod"])
    url = client.create_queue(QueueName=properties["QueueName"], Attributes=attributes)["QueueUrl"]
    log(f"sqs: queue {properties['QueueName']} ready")
    return str(url)


CREATORS: dict[str, tuple[str, Callable[[Any, Mapping[str, Any]], str]]] = {
    "AWS::DynamoDB::Table": ("dynamodb", create_table),
    "AWS::SecretsManager::Secret": ("secretsmanager", create_secret),
    "AWS::SQS::Queue": ("sqs", create_queue),
}
"""Resource types created locally, with the boto3 service and the function that creates one."""


def bootstrap_resources(context: TemplateContext, endpoint_url: str) -> dict[str, str]:
    """Create the template's resources at ``endpoint_url``; return logical id -> ``Ref`` value."""
    import boto3

    session = boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name=context.region
    )
    created: dict[str, str] = {}
    for resource_type, (service, create) in CREATORS.items():
        client = session.client(service, endpoint_url=endpoint_url)
        for logical_id, properties in context.resources(resource_type).items():
            created[logical_id] = create(client, properties)
            context.physical_ids[logical_id] = created[logical_id]
    skipped = sorted(
        logical_id
        for logical_id, resource in context.template.get("Resources", {}).items()
        if resource.get("Type") not in CREATORS
    )
    log(f"not created locally (Lambda code cannot run on moto): {', '.join(skipped)}")
    return created


# --- processes -----------------------------------------------------------------------------------------


def http_status(url: str, timeout: float = 1.0) -> tuple[int, bytes] | None:
    """``(status, body)`` of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return int(reply.status), reply.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), b""
    except (urllib.error.URLError, OSError):
        return None


def is_localstack(base_url: str) -> bool:
    reply = http_status(f"{base_url}/_localstack/health")
    if not reply or reply[0] != 200:
        return False
    try:
        return "services" in json.loads(reply[1])
    except ValueError:
        return False


def is_moto(base_url: str) -> bool:
    reply = http_status(f"{base_url}/moto-api/data.json")
    return bool(reply and reply[0] == 200)


def redis_answers(url: str) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, ValueError, OSError):
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Managed:
    """A process ``up`` started: pidfile, a word its command line must contain, a file with its URL."""

    name: str
    marker: str
    state_dir: Path

    @property
    def pidfile(self) -> Path:
        return self.state_dir / f"{self.name}.pid"

    @property
    def urlfile(self) -> Path:
        return self.state_dir / f"{self.name}.url"

    def pid(self) -> int | None:
        """The pid in the pidfile if that process is alive and still runs our program."""
        try:
            pid = int(self.pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, ValueError):
            return None
        if self.marker.encode() not in cmdline:
            return None  # the pid was reused by an unrelated process
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        return None if state == "Z" else pid

    def url(self) -> str | None:
        return self.urlfile.read_text().strip() if self.pid() and self.urlfile.exists() else None

    def start(self, command: list[str], url: str, ready: Callable[[], bool]) -> str:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        logfile = self.state_dir / f"{self.name}.log"
        with logfile.open("ab") as out:
            # A new session: the server outlives this script and ignores the terminal's Ctrl-C.
            proc = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pidfile.write_text(f"{proc.pid}\n")
        self.urlfile.write_text(f"{url}\n")
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if ready():
                log(f"{self.name}: started pid {proc.pid} ({url})")
                return url
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        tail = logfile.read_text(errors="replace")[-2000:]
        raise SystemExit(f"{self.name} did not come up on {url}; its log {logfile}:\n{tail}")

    def stop(self) -> bool:
        """Stop the process if it is ours and alive; remove the pidfile. True if something was stopped."""
        pid = self.pid()
        stopped = False
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_SECONDS
            while self.pid() == pid and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.pid() == pid:
                os.kill(pid, signal.SIGKILL)
            _reap(pid)
            log(f"{self.name}: stopped pid {pid}")
            stopped = True
        self.pidfile.unlink(missing_ok=True)
        self.urlfile.unlink(missing_ok=True)
        return stopped


def _reap(pid: int) -> None:
    """Collect the exit status if the process is our child (``up`` and ``down`` in one Python process)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def redis_server_binary() -> str:
    for candidate in ("/usr/bin/redis-server", shutil.which("redis-server")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise SystemExit("redis-server not found: apt-get install redis-server (or set REDIS_URL)")


def ensure_redis(state_dir: Path, url: str | None, force_start: bool) -> str:
    managed = Managed("redis", "redis-server", state_dir)
    if url:
        if not redis_answers(url):
            raise SystemExit(f"REDIS_URL {url} does not answer")
        log(f"redis: using {url}")
        return url
    running = managed.url()
    if running and redis_answers(running):
        log(f"redis: already running ({running}, pid {managed.pid()})")
        return running
    default = f"redis://{HOST}:6379/0"
    if not force_start and redis_answers(default):
        log(f"redis: using the server on {default}")
        return default
    port = free_port()
    data_dir = state_dir / "redis-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        redis_server_binary(), "--bind", HOST, "--port", str(port), "--daemonize", "no",
        "--save", "", "--appendonly", "no", "--dir", str(data_dir),
    ]  # fmt: skip
    started = f"redis://{HOST}:{port}/0"
    return managed.start(command, started, lambda: redis_answers(started))


def moto_server_command(port: int) -> list[str]:
    # moto_server with DynamoDB requests serialised: plain moto loses writes under concurrent transactions.
    from zvt_pipeline.devtools.moto_server import command

    return command(HOST, port)


def ensure_aws(state_dir: Path, port: int) -> tuple[str, str]:
    """``(endpoint url, kind)``: kind is ``localstack``, ``moto`` (found running) or ``moto (started)``."""
    managed = Managed("moto", "moto", state_dir)
    url = f"http://{HOST}:{port}"
    if managed.url() == url and is_moto(url):
        log(f"aws: moto_server already running ({url}, pid {managed.pid()})")
        return url, "moto (started)"
    if is_localstack(url):
        log(f"aws: LocalStack answers on {url}")
        return url, "localstack"
    if is_moto(url):
        log(f"aws: a moto_server started elsewhere answers on {url}; using it (down will leave it)")
        return url, "moto"
    if http_status(url) is not None:
        raise SystemExit(f"{url} answers but is neither LocalStack nor moto_server: pick --aws-port")
    managed.start(moto_server_command(port), url, lambda: is_moto(url))
    return url, "moto (started)"


# --- commands ------------------------------------------------------------------------------------------


def redis_endpoint(url: str) -> str:
    """``host:port`` for the template's RedisEndpoint parameter."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.hostname or HOST}:{parts.port or 6379}"


def stack_env(
    aws_url: str, redis_url: str, context: TemplateContext, created: Mapping[str, str]
) -> dict[str, str]:
    """The environment that points zvt-pipeline at the local stack."""
    variables = context.resolve(context.template["Globals"]["Function"]["Environment"]["Variables"])
    env = {
        "AWS_ENDPOINT_URL": aws_url,
        "LOCALSTACK_HOST": aws_url.removeprefix("http://"),
        "AWS_DEFAULT_REGION": context.region,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "REDIS_URL": redis_url,
        "ZVT_EVENT_STORE": variables["ZVT_EVENT_STORE"],
        "ZVT_DYNAMODB_TABLE": variables["ZVT_DYNAMODB_TABLE"],
        "ZVT_KEY_PREFIX": variables["ZVT_KEY_PREFIX"],
    }
    secrets = context.resources("AWS::SecretsManager::Secret")
    if "ExchangeApiKeysSecret" in secrets:
        name = secrets["ExchangeApiKeysSecret"]["Name"]
        exchange = name.rsplit("/", 1)[-1]
        log(
            f"exchange keys: aws secretsmanager put-secret-value --secret-id {name} --secret-string "
            f'\'{{"apiKey": ..., "secret": ...}}\', then run with ZVT_SECRETS_SOURCE=aws ZVT_VENUES={exchange}'
        )
    return env


def render_env(env: Mapping[str, str]) -> str:
    import shlex

    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())


def up(args: argparse.Namespace) -> dict[str, str]:
    state_dir: Path = args.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    redis_url = ensure_redis(state_dir, args.redis_url, args.start_redis)
    aws_url, kind = ensure_aws(state_dir, args.aws_port)
    overrides = {**LOCAL_PARAMETERS, "RedisEndpoint": redis_endpoint(redis_url), **dict(args.parameter)}
    context = TemplateContext(load_template(args.template), overrides, stack_name=args.stack_name)
    created = bootstrap_resources(context, aws_url)
    env = stack_env(aws_url, redis_url, context, created)
    (state_dir / "env").write_text(render_env(env))
    (state_dir / "stack.json").write_text(
        json.dumps(
            {"aws": {"url": aws_url, "kind": kind}, "redis": redis_url, "resources": created}, indent=2
        )
    )
    log(f"ready: AWS ({kind}) {aws_url}, redis {redis_url}; env saved in {state_dir / 'env'}")
    return env


def down(args: argparse.Namespace) -> list[str]:
    stopped = [
        managed.name
        for managed in (
            Managed("moto", "moto", args.state_dir),
            Managed("redis", "redis-server", args.state_dir),
        )
        if managed.stop()
    ]
    (args.state_dir / "env").unlink(missing_ok=True)
    (args.state_dir / "stack.json").unlink(missing_ok=True)
    log(f"stopped: {', '.join(stopped)}" if stopped else "nothing of ours was running")
    return stopped


def _parameter(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected Name=value, got {text!r}")
    return name, value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument(
        "--state-dir", type=Path, default=Path(os.environ.get("ZVT_LOCAL_STATE_DIR") or DEFAULT_STATE_DIR)
    )
    parser.add_argument(
        "--aws-port", type=int, default=int(os.environ.get("ZVT_LOCAL_AWS_PORT") or DEFAULT_AWS_PORT)
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or None)
    parser.add_argument(
        "--start-redis", action="store_true", help="start a private redis-server even if 6379 answers"
    )
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument("--stack-name", default=STACK_NAME)
    parser.add_argument("--parameter", type=_parameter, action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    args.state_dir = args.state_dir.resolve()
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.command == "up":
        sys.stdout.write(render_env(up(args)))
    else:
        down(args)


if __name__ == "__main__":
    main()
