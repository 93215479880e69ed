#!/usr/bin/env bash
# Deploys every Strata stack to a running LocalStack with cdklocal (stage "localstack":
# no VPC or RDS Proxy; the database and Upstash proxy come from localstack/docker-compose.yml).
# Writes the stack outputs to localstack/outputs.json for the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export AWS_REGION="$AWS_DEFAULT_REGION"
endpoint="${LOCALSTACK_ENDPOINT:-http://localhost:4566}"
export AWS_ENDPOINT_URL="$endpoint"

if ! curl -fsS --max-time 3 "$endpoint/_localstack/health" >/dev/null; then
  echo "LocalStack is not reachable at $endpoint." >&2
  echo "Start it first: docker compose -f localstack/docker-compose.yml up -d --wait" >&2
  exit 1
fi

ctx=(-c strata:stage=localstack)
npx cdklocal bootstrap aws://000000000000/us-east-1 "${ctx[@]}"
npx cdklocal deploy --all "${ctx[@]}" --require-approval never --outputs-file localstack/outputs.json
echo "Deployed. Outputs: localstack/outputs.json. Run: npm run test:localstack"
