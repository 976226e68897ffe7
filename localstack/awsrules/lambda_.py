"""Lambda configuration updates as AWS runs them: LastUpdateStatus is
InProgress for `lambda_updating` seconds after UpdateFunctionConfiguration,
and another update meanwhile is a ResourceConflictException (409). Plain
moto is Successful at once. A function's VpcConfig names the VPC of its
subnets (moto: always `vpc-123abc`). And the account's concurrency
settings and a function's provisioned concurrency configs, which plain
moto does not answer (see `answer`)."""

import json
import re
import urllib.parse

from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda.models import LambdaFunction
from moto.awslambda.utils import get_backend
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends

from . import settings


class ResourceConflict(LambdaClientError):
    code = 409

    def __init__(self, name: str):
        super().__init__(
            "ResourceConflictException",
            f"The operation cannot be performed at this time. An update is in progress for resource: {name}",
        )


def _updating(fn) -> bool:
    return settings.now() < getattr(fn, "_awsr_updating_until", 0.0)


def install() -> None:
    update = LambdaFunction.update_configuration
    get = LambdaFunction.get_configuration

    def update_configuration(self, config_updates):
        if _updating(self):
            raise ResourceConflict(self.function_arn)
        answer = update(self, config_updates)
        self._awsr_updating_until = settings.until("lambda_updating")
        if _updating(self):
            answer = dict(answer)
            answer["LastUpdateStatus"] = "InProgress"
            answer["LastUpdateStatusReason"] = "The function is being updated."
        return answer

    def get_configuration(self, on_create=False):
        config = get(self, on_create)
        if not on_create and _updating(self):
            config["LastUpdateStatus"] = "InProgress"
            config["LastUpdateStatusReason"] = "The function is being updated."
        return config

    LambdaFunction.update_configuration = update_configuration
    LambdaFunction.get_configuration = get_configuration

    vpc_config = LambdaFunction.vpc_config

    def vpc_of_subnets(self):
        config = vpc_config.fget(self)
        if config and config.get("SubnetIds"):
            ec2 = ec2_backends[self.account_id][self.region]
            try:
                config["VpcId"] = ec2.get_subnet(config["SubnetIds"][0]).vpc_id
            except Exception:  # a subnet since deleted: left as moto says
                pass
        return config

    LambdaFunction.vpc_config = property(vpc_of_subnets)


# GetAccountSettings and ListProvisionedConcurrencyConfigs, which moto 5.2.5
# does not route (404, an HTML page): the connection budget reads both.
ACCOUNT_SETTINGS = re.compile(r"^/2016-08-19/account-settings/?$")
PROVISIONED = re.compile(r"^/2019-09-30/functions/(?P<name>[^/]+)/provisioned-concurrency/?$")
# AWS's default quota of concurrent executions per account and region.
CONCURRENCY = 1000


def _region(environ) -> str:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    found = re.search(r"Credential=[^/]+/[^/]+/([^/]+)/lambda/", auth)
    return found.group(1) if found else "us-east-1"


def _json(status: str, body: dict, headers=()):
    return status, [("Content-Type", "application/json"), *headers], json.dumps(body).encode()


def answer(environ):
    """The answer to one of the calls above, or None for moto's own."""
    path = environ.get("PATH_INFO", "")
    if environ.get("REQUEST_METHOD") != "GET":
        return None
    # The backend moto's own Lambda answers from (Docker-less or not).
    backend = get_backend(DEFAULT_ACCOUNT_ID, _region(environ))
    if ACCOUNT_SETTINGS.match(path):
        functions = list(backend.list_functions())
        reserved = sum(int(f.reserved_concurrency or 0) for f in functions)
        return _json(
            "200 OK",
            {
                "AccountLimit": {
                    "TotalCodeSize": 80530636800,
                    "CodeSizeUnzipped": 262144000,
                    "CodeSizeZipped": 52428800,
                    "ConcurrentExecutions": CONCURRENCY,
                    "UnreservedConcurrentExecutions": CONCURRENCY - reserved,
                },
                "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": len(functions)},
            },
        )
    found = PROVISIONED.match(path)
    if found and "List=ALL" in environ.get("QUERY_STRING", ""):
        name = urllib.parse.unquote(found.group("name"))
        if not any(name in (f.function_name, f.function_arn) for f in backend.list_functions()):
            return _json(
                "404 Not Found",
                {"Type": "User", "Message": f"Function not found: {name}"},
                [("x-amzn-ErrorType", "ResourceNotFoundException")],
            )
        # moto keeps no provisioned concurrency: every function has none.
        return _json("200 OK", {"ProvisionedConcurrencyConfigs": []})
    return None
