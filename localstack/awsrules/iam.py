"""IAM deletes as AWS guards them: plain moto deletes a managed policy that
is still attached or still has versions other than the default; AWS
answers DeleteConflict (a role with policies is already refused by moto)."""

from moto.iam.exceptions import DeleteConflictException
from moto.iam.models import IAMBackend


def install() -> None:
    original = IAMBackend.delete_policy

    def delete_policy(self, policy_arn: str) -> None:
        policy = self.get_policy(policy_arn)
        if policy.attachment_count > 0:
            raise DeleteConflictException("Cannot delete a policy attached to entities.")
        if len(policy.versions) > 1:
            raise DeleteConflictException(
                "This policy has more than one version. Before you delete a policy, you must "
                "delete the policy's versions. The default version is deleted with the policy."
            )
        return original(self, policy_arn)

    IAMBackend.delete_policy = delete_policy
