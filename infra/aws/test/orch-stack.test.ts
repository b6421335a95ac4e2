// Assertions on the synthesized orch stack: resources, wiring and every
// security-group rule. Run with `npm test` (node's test runner via tsx).
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import {
  API_DISCOVERY_NAME,
  CLOUD_MAP_NAMESPACE,
  DB_PORT,
  HTTP_PORT,
  OrchStack,
  SCHEDULER_PORT,
} from '../lib/orch-stack';

const app = new App();
const stack = new OrchStack(app, 'Test', {
  apiImage: 'registry.example/orch/api-node:1.2.3',
  workerImage: 'registry.example/orch/worker-node:1.2.3',
  imageTag: '1.2.3',
  workerDesiredCount: 3,
  workerMaxCount: 12,
});
const template = Template.fromStack(stack);
const resources = template.toJSON().Resources as Record<string, { Type: string; Properties?: any }>;

const sgRef = (sg: ec2.SecurityGroup) => stack.resolve(sg.securityGroupId);
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
const logicalIdOf = (sg: ec2.SecurityGroup) => (sgRef(sg) as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];

interface Rule {
  peer: string; // a security group's logical id, or a CIDR
  port: number;
  toPort: number;
  protocol: string;
}

/** Every rule of one direction for one group: inline and standalone. */
function rules(sg: ec2.SecurityGroup, direction: 'Ingress' | 'Egress'): Rule[] {
  const id = logicalIdOf(sg);
  const out: Rule[] = [];
  const peerOf = (r: any): string => {
    const ref = r.SourceSecurityGroupId ?? r.DestinationSecurityGroupId;
    if (ref) return ref['Fn::GetAtt'][0];
    return r.CidrIp ?? r.CidrIpv6;
  };
  const inline = resources[id].Properties?.[`SecurityGroup${direction}`] ?? [];
  for (const r of inline) {
    // CDK's placeholder for "no egress at all".
    if (r.CidrIp === '255.255.255.255/32' && r.IpProtocol === 'icmp') continue;
    out.push({ peer: peerOf(r), port: r.FromPort, toPort: r.ToPort, protocol: r.IpProtocol });
  }
  for (const r of Object.values(resources)) {
    if (r.Type !== `AWS::EC2::SecurityGroup${direction}`) continue;
    if (!same(r.Properties.GroupId, sgRef(sg))) continue;
    out.push({ peer: peerOf(r.Properties), port: r.Properties.FromPort, toPort: r.Properties.ToPort, protocol: r.Properties.IpProtocol });
  }
  return out.sort((a, b) => a.port - b.port || a.peer.localeCompare(b.peer));
}

const ALB = logicalIdOf(stack.albSecurityGroup);
const API = logicalIdOf(stack.apiSecurityGroup);
const WORKER = logicalIdOf(stack.workerSecurityGroup);
const DB = logicalIdOf(stack.dbSecurityGroup);
const tcp = (peer: string, port: number): Rule => ({ peer, port, toPort: port, protocol: 'tcp' });

function containerOf(name: string): any {
  const defs = template.findResources('AWS::ECS::TaskDefinition');
  for (const d of Object.values(defs)) {
    for (const c of d.Properties.ContainerDefinitions) if (c.Name === name) return c;
  }
  assert.fail(`no container ${name}`);
}
const envOf = (c: any) => Object.fromEntries(c.Environment.map((e: any) => [e.Name, e.Value]));

describe('synthesis', () => {
  it('needs no context lookups and no account (environment-agnostic)', () => {
    const assembly = app.synth();
    assert.equal(assembly.manifest.missing, undefined);
    const artifact = assembly.getStackByName(stack.stackName);
    assert.equal(artifact.environment.account, 'unknown-account');
    assert.equal(artifact.environment.region, 'unknown-region');
  });
});

describe('network and database', () => {
  it('has one VPC with public, private and isolated subnets in two AZs', () => {
    template.resourceCountIs('AWS::EC2::VPC', 1);
    template.resourceCountIs('AWS::EC2::Subnet', 6);
  });

  it('runs PostgreSQL 15 on RDS, private, encrypted, in the db security group', () => {
    template.resourceCountIs('AWS::RDS::DBInstance', 1);
    template.hasResourceProperties('AWS::RDS::DBInstance', {
      Engine: 'postgres',
      EngineVersion: Match.stringLikeRegexp('^15'),
      DBName: 'orch',
      PubliclyAccessible: false,
      StorageEncrypted: true,
      VPCSecurityGroups: [sgRef(stack.dbSecurityGroup)],
    });
  });

  it('keeps the database credentials in Secrets Manager', () => {
    template.resourceCountIs('AWS::SecretsManager::Secret', 1);
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      GenerateSecretString: Match.objectLike({ GenerateStringKey: 'password' }),
    });
    const db = Object.values(template.findResources('AWS::RDS::DBInstance'))[0];
    assert.match(JSON.stringify(db.Properties.MasterUserPassword), /resolve:secretsmanager/);
  });
});

describe('ECS services', () => {
  it('has one cluster and two Fargate services', () => {
    template.resourceCountIs('AWS::ECS::Cluster', 1);
    template.resourceCountIs('AWS::ECS::Service', 2);
    template.allResourcesProperties('AWS::ECS::Service', { LaunchType: 'FARGATE' });
  });

  it('runs the two images', () => {
    assert.equal(containerOf('api-node').Image, 'registry.example/orch/api-node:1.2.3');
    assert.equal(containerOf('worker-node').Image, 'registry.example/orch/worker-node:1.2.3');
  });

  it('puts the api behind an internet-facing ALB that health-checks /ready', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      Scheme: 'internet-facing',
      SecurityGroups: [sgRef(stack.albSecurityGroup)],
    });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      Port: HTTP_PORT,
      TargetType: 'ip',
      HealthCheckPath: '/ready',
      Matcher: { HttpCode: '200' },
    });
    template.hasResourceProperties('AWS::ECS::Service', {
      LoadBalancers: [Match.objectLike({ ContainerName: 'api-node', ContainerPort: HTTP_PORT })],
    });
  });

  it('registers the api in Cloud Map and points the workers at it', () => {
    template.hasResourceProperties('AWS::ServiceDiscovery::PrivateDnsNamespace', { Name: CLOUD_MAP_NAMESPACE });
    template.hasResourceProperties('AWS::ServiceDiscovery::Service', {
      Name: API_DISCOVERY_NAME,
      DnsConfig: Match.objectLike({ DnsRecords: [Match.objectLike({ Type: 'A' })] }),
    });
    const env = envOf(containerOf('worker-node'));
    assert.equal(env.SCHEDULER_HOST, `${API_DISCOVERY_NAME}.${CLOUD_MAP_NAMESPACE}`);
    assert.equal(env.SCHEDULER_PORT, String(SCHEDULER_PORT));
  });

  it('configures the api-node for containers and the database secret', () => {
    const c = containerOf('api-node');
    const env = envOf(c);
    assert.equal(env.HTTP_HOST, '0.0.0.0');
    assert.equal(env.SCHEDULER_HOST, '0.0.0.0');
    assert.equal(env.HTTP_PORT, String(HTTP_PORT));
    assert.equal(env.SCHEDULER_PORT, String(SCHEDULER_PORT));
    assert.equal(env.IMAGE_TAG, '1.2.3');
    assert.equal(env.PGSSLMODE, 'require');
    const secrets = Object.fromEntries(c.Secrets.map((s: any) => [s.Name, JSON.stringify(s.ValueFrom)]));
    assert.match(secrets.PGPASSWORD, /:password::/);
    assert.match(secrets.PGUSER, /:username::/);
    assert.ok(!JSON.stringify(c.Environment).includes('password'), 'no password in plain environment');
    assert.deepEqual(c.PortMappings.map((p: any) => p.ContainerPort).sort(), [HTTP_PORT, SCHEDULER_PORT].sort());
  });

  it('gives both nodes longer to stop than DRAIN_SECONDS', () => {
    for (const name of ['api-node', 'worker-node']) {
      const c = containerOf(name);
      assert.ok(c.StopTimeout > Number(envOf(c).DRAIN_SECONDS), `${name} StopTimeout ${c.StopTimeout}`);
      assert.ok(c.StopTimeout <= 120, 'Fargate caps the stop timeout at 120 s');
    }
  });

  it('logs both services to their own CloudWatch log groups', () => {
    template.resourceCountIs('AWS::Logs::LogGroup', 2);
    for (const name of ['api-node', 'worker-node']) {
      const c = containerOf(name);
      assert.equal(c.LogConfiguration.LogDriver, 'awslogs');
      assert.ok(c.LogConfiguration.Options['awslogs-group'].Ref, `${name} logs to a log group of the stack`);
    }
    assert.notDeepEqual(
      containerOf('api-node').LogConfiguration.Options['awslogs-group'],
      containerOf('worker-node').LogConfiguration.Options['awslogs-group'],
    );
  });

  it('autoscales the workers on CPU from their desired count', () => {
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      MinCapacity: 3,
      MaxCapacity: 12,
      ScalableDimension: 'ecs:service:DesiredCount',
    });
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      PolicyType: 'TargetTrackingScaling',
      TargetTrackingScalingPolicyConfiguration: Match.objectLike({
        PredefinedMetricSpecification: { PredefinedMetricType: 'ECSServiceAverageCPUUtilization' },
      }),
    });
    template.hasResourceProperties('AWS::ECS::Service', {
      DesiredCount: 3,
      NetworkConfiguration: {
        AwsvpcConfiguration: Match.objectLike({ SecurityGroups: [sgRef(stack.workerSecurityGroup)], AssignPublicIp: 'DISABLED' }),
      },
    });
  });
});

describe('security groups', () => {
  it('lets only the internet reach the ALB, on port 80', () => {
    assert.deepEqual(rules(stack.albSecurityGroup, 'Ingress'), [tcp('0.0.0.0/0', 80)]);
    assert.deepEqual(rules(stack.albSecurityGroup, 'Egress'), [tcp(API, HTTP_PORT)]);
  });

  it('lets the ALB reach api http and the workers reach the api scheduler port, nothing else', () => {
    assert.deepEqual(rules(stack.apiSecurityGroup, 'Ingress'), [tcp(WORKER, SCHEDULER_PORT), tcp(ALB, HTTP_PORT)]);
  });

  it('lets only the api reach the database', () => {
    assert.deepEqual(rules(stack.dbSecurityGroup, 'Ingress'), [tcp(API, DB_PORT)]);
    assert.deepEqual(rules(stack.dbSecurityGroup, 'Egress'), []);
  });

  it('gives workers no inbound rule and no path to the database', () => {
    assert.deepEqual(rules(stack.workerSecurityGroup, 'Ingress'), []);
    assert.deepEqual(rules(stack.workerSecurityGroup, 'Egress'), [tcp('0.0.0.0/0', 443), tcp(API, SCHEDULER_PORT)]);
  });

  it('lets the api out only to the database and HTTPS', () => {
    assert.deepEqual(rules(stack.apiSecurityGroup, 'Egress'), [tcp('0.0.0.0/0', 443), tcp(DB, DB_PORT)]);
  });

  it('opens no other port to the world', () => {
    for (const [id, r] of Object.entries(resources)) {
      if (r.Type === 'AWS::EC2::SecurityGroup') {
        for (const rule of r.Properties.SecurityGroupIngress ?? []) {
          if (rule.CidrIp === '0.0.0.0/0') assert.equal(id, ALB, `world ingress on ${id}`);
        }
      }
      if (r.Type === 'AWS::EC2::SecurityGroupIngress') assert.notEqual(r.Properties.CidrIp, '0.0.0.0/0');
    }
  });
});

describe('images', () => {
  it('grants the execution role the pull of a private ECR image', () => {
    const ecrApp = new App();
    const ecrStack = new OrchStack(ecrApp, 'Ecr', {
      apiImage: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/orch/api-node:9.9.9',
      workerImage: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/orch/worker-node:9.9.9',
    });
    const t = Template.fromStack(ecrStack);
    const policies = JSON.stringify(t.findResources('AWS::IAM::Policy'));
    assert.match(policies, /ecr:BatchGetImage/);
    assert.match(policies, /repository\/orch\/api-node/);
    assert.match(policies, /repository\/orch\/worker-node/);
    assert.equal(ecrApp.synth().manifest.missing, undefined);
  });
});
