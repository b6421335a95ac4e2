#!/usr/bin/env node
// cdk app entry point. Settings come from context, e.g.
//   npx cdk synth -c apiImage=<ecr>/orch/api-node:0.1.0 -c workerImage=<ecr>/orch/worker-node:0.1.0
// No env is set on purpose: the stack is environment-agnostic, so synth
// needs no AWS account and does no lookups.
import { App } from 'aws-cdk-lib';
import { OrchStack } from '../lib/orch-stack';

const app = new App();

function ctx(name: string): string | undefined {
  const v = app.node.tryGetContext(name);
  return v === undefined || v === null || v === '' ? undefined : String(v);
}
function ctxInt(name: string): number | undefined {
  const v = ctx(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`context ${name} must be a non-negative integer, got ${v}`);
  return n;
}

new OrchStack(app, ctx('stackName') ?? 'Orch', {
  description: 'orch distributed job service: api-node and worker-node on ECS Fargate, RDS PostgreSQL',
  apiImage: ctx('apiImage'),
  workerImage: ctx('workerImage'),
  imageTag: ctx('imageTag'),
  apiDesiredCount: ctxInt('apiDesiredCount'),
  workerDesiredCount: ctxInt('workerDesiredCount'),
  workerMinCount: ctxInt('workerMinCount'),
  workerMaxCount: ctxInt('workerMaxCount'),
  workerSlots: ctxInt('workerSlots'),
  drainSeconds: ctxInt('drainSeconds'),
  natGateways: ctxInt('natGateways'),
  dbInstanceType: ctx('dbInstanceType'),
  dbMultiAz: ctx('dbMultiAz') === 'true',
  dbDeletionProtection: ctx('dbDeletionProtection') !== 'false',
});
