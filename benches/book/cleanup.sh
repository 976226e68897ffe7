#!/usr/bin/env bash
# The AWS Cookbook's cleanup of recipe 4.3, for the benchmark: delete the
# proxy and wait (polling every POLL_SECONDS) until it is gone, delete the
# proxy security group's leftover network interfaces, revoke both ingress
# rules, delete the group, detach and delete the connect policy, detach the
# secrets policy, delete the role. Like the book, it never restores DB_HOST
# and never deregisters the target. Same environment as recipe.sh, whose
# WORK/book.env it reads.
set -euo pipefail
aws() { command aws --endpoint-url "$AWS_ENDPOINT_URL" --output text "$@"; }
POLL=${POLL_SECONDS:-10}
P=${PREFIX:-}
ROLE=${P}AWSCookbook403RDSProxy
POLICY_ARN="arn:aws:iam::$AWS_ACCOUNT_ID:policy/${P}AWSCookbook403RdsIamPolicy"
# shellcheck disable=SC1091
source "$WORK/book.env"

aws rds delete-db-proxy --db-proxy-name "$DB_NAME" > /dev/null
while aws rds describe-db-proxies --db-proxy-name "$DB_NAME" > /dev/null 2>&1; do
  sleep "$POLL"
done
for eni in $(aws ec2 describe-network-interfaces \
  --filters "Name=group-id,Values=$RDS_PROXY_SG_ID" \
  --query 'NetworkInterfaces[*].NetworkInterfaceId'); do
  # Still "currently in use" while the deleted proxy releases it: try
  # again every POLL seconds, as a person would, until it is deleted or
  # gone by itself.
  until out=$(aws ec2 delete-network-interface --network-interface-id "$eni" 2>&1); do
    case "$out" in
    *NotFound*) break ;;
    *"in use"*) sleep "$POLL" ;;
    *)
      echo "$out" >&2
      exit 1
      ;;
    esac
  done
done
aws ec2 revoke-security-group-ingress --protocol tcp --port 3306 \
  --source-group "$DB_APP_FUNCTION_SG_ID" --group-id "$RDS_PROXY_SG_ID" > /dev/null
aws ec2 revoke-security-group-ingress --protocol tcp --port 3306 \
  --source-group "$RDS_PROXY_SG_ID" --group-id "$RDS_SG" > /dev/null
# The deleted proxy's network interfaces keep the group in use for a while
# (DependencyViolation): try again every POLL seconds, as a person would.
until aws ec2 delete-security-group --group-id "$RDS_PROXY_SG_ID" 2>/dev/null; do
  sleep "$POLL"
done
aws iam detach-role-policy --role-name "$DB_APP_FUNCTION_ROLE_NAME" --policy-arn "$POLICY_ARN"
aws iam delete-policy --policy-arn "$POLICY_ARN"
aws iam detach-role-policy --role-name "$ROLE" \
  --policy-arn arn:aws:iam::aws:policy/SecretsManagerReadWrite
aws iam delete-role --role-name "$ROLE"
