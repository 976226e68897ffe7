"""Lambda configuration updates as AWS runs them: LastUpdateStatus is
InProgress for `lambda_updating` seconds after UpdateFunctionConfiguration,
and another update meanwhile is a ResourceConflictException (409). Plain
moto is Successful at once."""

from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda.models import LambdaFunction

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
