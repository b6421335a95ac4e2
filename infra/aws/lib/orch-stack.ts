import {
  CfnOutput,
  Duration,
  RemovalPolicy,
  Stack,
  type StackProps,
} from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as servicediscovery from 'aws-cdk-lib/aws-servicediscovery';
import { Construct } from 'constructs';

/** Settings of the orch deployment; every one has a default. */
export interface OrchStackProps extends StackProps {
  /** api-node image, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/orch/api-node:0.1.0 */
  readonly apiImage?: string;
  /** worker-node image */
  readonly workerImage?: string;
  /** Reported by GET /version. */
  readonly imageTag?: string;
  readonly apiDesiredCount?: number;
  readonly workerDesiredCount?: number;
  readonly workerMinCount?: number;
  readonly workerMaxCount?: number;
  /** Average worker CPU the autoscaler keeps the service at. */
  readonly workerCpuTargetPercent?: number;
  readonly workerSlots?: number;
  /** DRAIN_SECONDS of both nodes; the ECS stop timeout is 30 s longer (Fargate caps it at 120 s). */
  readonly drainSeconds?: number;
  readonly natGateways?: number;
  readonly dbInstanceType?: string;
  readonly dbMultiAz?: boolean;
  readonly dbAllocatedStorageGiB?: number;
  /** Keep the database (and a final snapshot) when the stack is deleted. */
  readonly dbDeletionProtection?: boolean;
  readonly logRetention?: logs.RetentionDays;
}

export const HTTP_PORT = 8080;
export const SCHEDULER_PORT = 4242;
export const DB_PORT = 5432;
export const DB_NAME = 'orch';
export const CLOUD_MAP_NAMESPACE = 'orch.internal';
export const API_DISCOVERY_NAME = 'api';

const ECR_IMAGE = /^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?\/([^:@]+)[:@](.+)$/;

/**
 * An image by URI. A private ECR image (ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG)
 * is referenced as an ECR repository, so the task execution role is granted
 * the pull; anything else is pulled as is. No lookup either way.
 */
export function imageFromUri(scope: Construct, id: string, uri: string): ecs.ContainerImage {
  const m = ECR_IMAGE.exec(uri);
  if (!m) return ecs.ContainerImage.fromRegistry(uri);
  const [, account, region, repositoryName, tag] = m;
  const repository = ecr.Repository.fromRepositoryAttributes(scope, id, {
    repositoryName,
    repositoryArn: `arn:${Stack.of(scope).partition}:ecr:${region}:${account}:repository/${repositoryName}`,
  });
  return ecs.ContainerImage.fromEcrRepository(repository, tag);
}

/**
 * orch on ECS Fargate: a VPC, RDS PostgreSQL 15 (credentials in Secrets
 * Manager), an ECS cluster with the api-node service behind an ALB (health
 * check /ready) and the worker-node service with CPU autoscaling. Workers
 * find the scheduler through Cloud Map (api.orch.internal).
 *
 * Environment-agnostic and free of context lookups, so `cdk synth` works
 * offline without an AWS account.
 */
export class OrchStack extends Stack {
  readonly vpc: ec2.Vpc;
  readonly albSecurityGroup: ec2.SecurityGroup;
  readonly apiSecurityGroup: ec2.SecurityGroup;
  readonly workerSecurityGroup: ec2.SecurityGroup;
  readonly dbSecurityGroup: ec2.SecurityGroup;
  readonly database: rds.DatabaseInstance;
  readonly cluster: ecs.Cluster;
  readonly apiService: ecs.FargateService;
  readonly workerService: ecs.FargateService;
  readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  readonly schedulerHost: string;

  constructor(scope: Construct, id: string, props: OrchStackProps = {}) {
    super(scope, id, props);

    const imageTag = props.imageTag ?? '0.1.0';
    const apiImage = props.apiImage ?? `orch/api-node:${imageTag}`;
    const workerImage = props.workerImage ?? `orch/worker-node:${imageTag}`;
    const drainSeconds = props.drainSeconds ?? 60;
    // Fargate allows at most 120 s between SIGTERM and SIGKILL.
    const stopTimeout = Duration.seconds(Math.min(drainSeconds + 30, 120));
    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;

    // --- network -------------------------------------------------------
    this.vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: props.natGateways ?? 1,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: 'app', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 22 },
        { name: 'db', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
      ],
    });

    // Security groups start closed (no egress either); every rule below is
    // one of: internet -> ALB, ALB -> api http, worker -> api scheduler,
    // api -> db, plus HTTPS out of the tasks (image pulls, logs, secrets).
    this.albSecurityGroup = new ec2.SecurityGroup(this, 'AlbSg', {
      vpc: this.vpc,
      description: 'orch ALB: HTTP from the internet, to api-node only',
      allowAllOutbound: false,
    });
    this.apiSecurityGroup = new ec2.SecurityGroup(this, 'ApiSg', {
      vpc: this.vpc,
      description: 'orch api-node: http from the ALB, scheduler from workers',
      allowAllOutbound: false,
    });
    this.workerSecurityGroup = new ec2.SecurityGroup(this, 'WorkerSg', {
      vpc: this.vpc,
      description: 'orch worker-node: no inbound; dials the api scheduler',
      allowAllOutbound: false,
    });
    this.dbSecurityGroup = new ec2.SecurityGroup(this, 'DbSg', {
      vpc: this.vpc,
      description: 'orch PostgreSQL: from api-node only',
      allowAllOutbound: false,
    });

    this.albSecurityGroup.addIngressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(80), 'HTTP from the internet');
    this.apiSecurityGroup.addIngressRule(this.albSecurityGroup, ec2.Port.tcp(HTTP_PORT), 'ALB to api-node http');
    this.albSecurityGroup.addEgressRule(this.apiSecurityGroup, ec2.Port.tcp(HTTP_PORT), 'ALB to api-node http');
    this.apiSecurityGroup.addIngressRule(this.workerSecurityGroup, ec2.Port.tcp(SCHEDULER_PORT), 'workers to the CAF scheduler');
    this.workerSecurityGroup.addEgressRule(this.apiSecurityGroup, ec2.Port.tcp(SCHEDULER_PORT), 'workers to the CAF scheduler');
    this.dbSecurityGroup.addIngressRule(this.apiSecurityGroup, ec2.Port.tcp(DB_PORT), 'api-node to PostgreSQL');
    this.apiSecurityGroup.addEgressRule(this.dbSecurityGroup, ec2.Port.tcp(DB_PORT), 'api-node to PostgreSQL');
    // Workers do not talk to the database in this design: no worker -> db rule.
    for (const sg of [this.apiSecurityGroup, this.workerSecurityGroup]) {
      sg.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'HTTPS: ECR, CloudWatch Logs, Secrets Manager');
    }

    // --- database ------------------------------------------------------
    this.database = new rds.DatabaseInstance(this, 'Database', {
      engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_15 }),
      instanceType: new ec2.InstanceType(props.dbInstanceType ?? 't4g.small'),
      vpc: this.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
      securityGroups: [this.dbSecurityGroup],
      port: DB_PORT,
      databaseName: DB_NAME,
      // Generated password, kept in Secrets Manager.
      credentials: rds.Credentials.fromGeneratedSecret('orch', {
        secretName: `${this.stackName}/orch-db`,
      }),
      multiAz: props.dbMultiAz ?? false,
      allocatedStorage: props.dbAllocatedStorageGiB ?? 20,
      maxAllocatedStorage: Math.max(100, (props.dbAllocatedStorageGiB ?? 20) * 5),
      storageType: rds.StorageType.GP3,
      storageEncrypted: true,
      backupRetention: Duration.days(7),
      deletionProtection: props.dbDeletionProtection ?? true,
      removalPolicy: (props.dbDeletionProtection ?? true) ? RemovalPolicy.SNAPSHOT : RemovalPolicy.DESTROY,
      publiclyAccessible: false,
      cloudwatchLogsExports: ['postgresql'],
      cloudwatchLogsRetention: logRetention,
    });
    const dbSecret = this.database.secret!;

    // --- cluster and discovery -----------------------------------------
    this.cluster = new ecs.Cluster(this, 'Cluster', {
      vpc: this.vpc,
      containerInsightsV2: ecs.ContainerInsights.ENABLED,
    });
    const namespace = new servicediscovery.PrivateDnsNamespace(this, 'Namespace', {
      name: CLOUD_MAP_NAMESPACE,
      vpc: this.vpc,
      description: 'orch service discovery: workers resolve the api scheduler here',
    });
    this.schedulerHost = `${API_DISCOVERY_NAME}.${CLOUD_MAP_NAMESPACE}`;

    const common = {
      LOG_LEVEL: 'info',
      LOG_FORMAT: 'json',
      DRAIN_SECONDS: String(drainSeconds),
    };

    // --- api-node --------------------------------------------------------
    const apiLogs = new logs.LogGroup(this, 'ApiLogs', {
      retention: logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const apiTask = new ecs.FargateTaskDefinition(this, 'ApiTask', {
      cpu: 512,
      memoryLimitMiB: 1024,
      runtimePlatform: {
        cpuArchitecture: ecs.CpuArchitecture.X86_64,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
    });
    apiTask.addContainer('api-node', {
      image: imageFromUri(this, 'ApiImageRepo', apiImage),
      essential: true,
      portMappings: [
        { name: 'http', containerPort: HTTP_PORT, protocol: ecs.Protocol.TCP },
        { name: 'scheduler', containerPort: SCHEDULER_PORT, protocol: ecs.Protocol.TCP },
      ],
      environment: {
        ...common,
        // libpq fills what the URL leaves out from the PG* variables below,
        // so the password never leaves Secrets Manager as a URL.
        DATABASE_URL: 'postgresql://',
        PGHOST: this.database.dbInstanceEndpointAddress,
        PGPORT: this.database.dbInstanceEndpointPort,
        PGDATABASE: DB_NAME,
        PGSSLMODE: 'require',
        HTTP_HOST: '0.0.0.0',
        HTTP_PORT: String(HTTP_PORT),
        SCHEDULER_HOST: '0.0.0.0',
        SCHEDULER_PORT: String(SCHEDULER_PORT),
        IMAGE_TAG: imageTag,
        MIGRATIONS_DIR: '/usr/share/orch/migrations',
      },
      secrets: {
        PGUSER: ecs.Secret.fromSecretsManager(dbSecret, 'username'),
        PGPASSWORD: ecs.Secret.fromSecretsManager(dbSecret, 'password'),
      },
      healthCheck: {
        command: ['CMD-SHELL', `curl -fsS -o /dev/null http://127.0.0.1:${HTTP_PORT}/health || exit 1`],
        interval: Duration.seconds(15),
        timeout: Duration.seconds(3),
        retries: 3,
        startPeriod: Duration.seconds(30),
      },
      stopTimeout,
      // The entrypoint writes a per-task root UUID to /etc/fstab (CAF 0.17
      // node ids), so the root filesystem stays writable.
      readonlyRootFilesystem: false,
      logging: ecs.LogDrivers.awsLogs({ logGroup: apiLogs, streamPrefix: 'api-node' }),
    });

    this.apiService = new ecs.FargateService(this, 'ApiService', {
      cluster: this.cluster,
      taskDefinition: apiTask,
      desiredCount: props.apiDesiredCount ?? 2,
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      securityGroups: [this.apiSecurityGroup],
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      assignPublicIp: false,
      circuitBreaker: { rollback: true },
      healthCheckGracePeriod: Duration.seconds(60),
      cloudMapOptions: {
        name: API_DISCOVERY_NAME,
        cloudMapNamespace: namespace,
        dnsRecordType: servicediscovery.DnsRecordType.A,
        dnsTtl: Duration.seconds(10),
      },
    });

    this.loadBalancer = new elbv2.ApplicationLoadBalancer(this, 'Alb', {
      vpc: this.vpc,
      internetFacing: true,
      securityGroup: this.albSecurityGroup,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
    });
    const listener = this.loadBalancer.addListener('Http', {
      port: 80,
      protocol: elbv2.ApplicationProtocol.HTTP,
      open: false,
    });
    listener.addTargets('Api', {
      port: HTTP_PORT,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targets: [
        this.apiService.loadBalancerTarget({ containerName: 'api-node', containerPort: HTTP_PORT }),
      ],
      healthCheck: {
        path: '/ready',
        healthyHttpCodes: '200',
        interval: Duration.seconds(15),
        timeout: Duration.seconds(5),
        healthyThresholdCount: 2,
        unhealthyThresholdCount: 3,
      },
      deregistrationDelay: Duration.seconds(Math.min(drainSeconds, 300)),
    });

    // --- worker-node -----------------------------------------------------
    const workerLogs = new logs.LogGroup(this, 'WorkerLogs', {
      retention: logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const workerTask = new ecs.FargateTaskDefinition(this, 'WorkerTask', {
      cpu: 1024,
      memoryLimitMiB: 2048,
      runtimePlatform: {
        cpuArchitecture: ecs.CpuArchitecture.X86_64,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
    });
    workerTask.addContainer('worker-node', {
      image: imageFromUri(this, 'WorkerImageRepo', workerImage),
      essential: true,
      environment: {
        ...common,
        SCHEDULER_HOST: this.schedulerHost,
        SCHEDULER_PORT: String(SCHEDULER_PORT),
        WORKER_SLOTS: String(props.workerSlots ?? 2),
      },
      stopTimeout,
      readonlyRootFilesystem: false,
      logging: ecs.LogDrivers.awsLogs({ logGroup: workerLogs, streamPrefix: 'worker-node' }),
    });

    const workerDesired = props.workerDesiredCount ?? 2;
    this.workerService = new ecs.FargateService(this, 'WorkerService', {
      cluster: this.cluster,
      taskDefinition: workerTask,
      desiredCount: workerDesired,
      minHealthyPercent: 50,
      maxHealthyPercent: 200,
      securityGroups: [this.workerSecurityGroup],
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      assignPublicIp: false,
      circuitBreaker: { rollback: true },
    });
    const scaling = this.workerService.autoScaleTaskCount({
      minCapacity: props.workerMinCount ?? workerDesired,
      maxCapacity: props.workerMaxCount ?? Math.max(10, workerDesired),
    });
    scaling.scaleOnCpuUtilization('WorkerCpu', {
      targetUtilizationPercent: props.workerCpuTargetPercent ?? 60,
      // Scale in slowly: every removed worker drains its jobs first.
      scaleInCooldown: Duration.minutes(5),
      scaleOutCooldown: Duration.minutes(1),
    });

    // --- outputs -------------------------------------------------------
    new CfnOutput(this, 'ApiUrl', { value: `http://${this.loadBalancer.loadBalancerDnsName}` });
    new CfnOutput(this, 'SchedulerHost', { value: this.schedulerHost });
    new CfnOutput(this, 'DatabaseSecretArn', { value: dbSecret.secretArn });
    new CfnOutput(this, 'ClusterName', { value: this.cluster.clusterName });
    new CfnOutput(this, 'WorkerServiceName', { value: this.workerService.serviceName });
  }
}
