#!/usr/bin/env bash
# The AWS Cookbook's recipe 4.3 (seed 001) as a person types it, for the
# benchmark: the book's commands in the book's order, polling the proxy's
# status every POLL_SECONDS (10 s) the way the book says to check it until
# it is available. One addition: the book never waits for the target, but
# its check (the invoke) only passes once the target is AVAILABLE, so the
# target is polled the same way before the Lambda is pointed at the proxy.
#
# Needs the seed's exports (VPC_ID, ISOLATED_SUBNETS, DB_NAME, RDS_ID,
# RDS_SG, RDS_SECRET_ARN, AWS_ACCOUNT_ID, DB_APP_FUNCTION_NAME,
# DB_APP_FUNCTION_ROLE_NAME, DB_APP_FUNCTION_SG_ID), AWS_ENDPOINT_URL, the
# AWS CLI on PATH, PREFIX for unique names and WORK for its files (it
# writes WORK/book.env for cleanup.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
policies="$here/../../runbooks/policies"
aws() { command aws --endpoint-url "$AWS_ENDPOINT_URL" --output text "$@"; }
POLL=${POLL_SECONDS:-10}
P=${PREFIX:-}
ROLE=${P}AWSCookbook403RDSProxy

# 1. The proxy's IAM role.
aws iam create-role --assume-role-policy-document "file://$policies/rds-proxy-trust-policy.json" \
  --role-name "$ROLE" > /dev/null

# 2. Its security group and the proxy; wait until it is available.
RDS_PROXY_SG_ID=$(aws ec2 create-security-group \
  --group-name "${P}AWSCookbook403RDSProxySG" \
  --description "Lambda Security Group" --vpc-id "$VPC_ID" \
  --query GroupId)
RDS_PROXY_ENDPOINT_ARN=$(aws rds create-db-proxy \
  --db-proxy-name "$DB_NAME" \
  --engine-family MYSQL \
  --auth '{"AuthScheme": "SECRETS", "SecretArn": "'"$RDS_SECRET_ARN"'", "IAMAuth": "REQUIRED"}' \
  --role-arn "arn:aws:iam::$AWS_ACCOUNT_ID:role/$ROLE" \
  --vpc-subnet-ids $ISOLATED_SUBNETS \
  --vpc-security-group-ids "$RDS_PROXY_SG_ID" \
  --require-tls \
  --query DBProxy.DBProxyArn)
echo "RDS_PROXY_SG_ID=$RDS_PROXY_SG_ID" > "$WORK/book.env"
until [ "$(aws rds describe-db-proxies --db-proxy-name "$DB_NAME" --query 'DBProxies[0].Status')" = available ]; do
  sleep "$POLL"
done
RDS_PROXY_ENDPOINT=$(aws rds describe-db-proxies --db-proxy-name "$DB_NAME" \
  --query 'DBProxies[0].Endpoint')
RDS_PROXY_ID=$(echo "$RDS_PROXY_ENDPOINT_ARN" | awk -F: '{ print $7 }')

# 3-4. The rds-db:connect policy, attached to the function's role.
sed -e "s/AWS_ACCOUNT_ID/${AWS_ACCOUNT_ID}/g" \
  -e "s|AWS_REGION|${AWS_REGION}|g" \
  -e "s|RDSProxyID|${RDS_PROXY_ID}|g" \
  -e "s|DB_USER|*|g" \
  "$policies/rds-connect-policy-template.json" > "$WORK/policy.json"
aws iam create-policy --policy-name "${P}AWSCookbook403RdsIamPolicy" \
  --policy-document "file://$WORK/policy.json" > /dev/null
aws iam attach-role-policy --role-name "$DB_APP_FUNCTION_ROLE_NAME" \
  --policy-arn "arn:aws:iam::$AWS_ACCOUNT_ID:policy/${P}AWSCookbook403RdsIamPolicy"
# The book looks at the proxy's status once more here.
aws rds describe-db-proxies --db-proxy-name "$DB_NAME" --query 'DBProxies[0].Status' > /dev/null

# 5. The proxy's role may read the secret (the book's managed policy).
aws iam attach-role-policy --role-name "$ROLE" \
  --policy-arn arn:aws:iam::aws:policy/SecretsManagerReadWrite

# 6. The DB admits the proxy.
aws ec2 authorize-security-group-ingress --protocol tcp --port 3306 \
  --source-group "$RDS_PROXY_SG_ID" --group-id "$RDS_SG" > /dev/null

# 7. Register the DB; (not in the book) wait until the target is AVAILABLE.
aws rds register-db-proxy-targets --db-proxy-name "$DB_NAME" \
  --db-instance-identifiers "$RDS_ID" > /dev/null
until [ "$(aws rds describe-db-proxy-targets --db-proxy-name "$DB_NAME" --query 'Targets[0].TargetHealth.State')" = AVAILABLE ]; do
  sleep "$POLL"
done

# 8. The proxy admits the function.
aws ec2 authorize-security-group-ingress --protocol tcp --port 3306 \
  --source-group "$DB_APP_FUNCTION_SG_ID" --group-id "$RDS_PROXY_SG_ID" > /dev/null

# 9. DB_HOST = the proxy endpoint (the book's command drops the other
# variables).
aws lambda update-function-configuration --function-name "$DB_APP_FUNCTION_NAME" \
  --environment "Variables={DB_HOST=$RDS_PROXY_ENDPOINT}" > /dev/null

# Check: invoke the function.
aws lambda invoke --function-name "$DB_APP_FUNCTION_NAME" "$WORK/response.json" > /dev/null
