import { App, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { AwsSolutionsChecks } from 'cdk-nag';
import { acknowledgeWildcards, nagFinding, wildcardFindings } from '../../lib/wildcard-acknowledgements';
import { removeTempDirs, tempDir } from './synth';

afterAll(removeTempDirs);

describe('nagFinding', () => {
  const instances = nagFinding('Resource::arn:{partition}:ec2:{region}:{account}:instance/*');

  test('matches environment-agnostic and environment-specific spellings', () => {
    expect(instances.test('Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*')).toBe(true);
    expect(instances.test('Resource::arn:<AWS::Partition>:ec2:eu-west-1:123456789012:instance/*')).toBe(true);
    expect(instances.test('Resource::arn:aws-cn:ec2:cn-north-1:123456789012:instance/*')).toBe(true);
  });

  test('a "*" in the pattern is literal, not a wildcard', () => {
    expect(instances.test('Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/i-123')).toBe(
      false,
    );
    expect(instances.test('Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:*')).toBe(false);
    expect(nagFinding('Resource::*').test('Resource::arn:aws:s3:::bucket/*')).toBe(false);
  });
});

describe('acknowledgeWildcards', () => {
  function policyStack() {
    const app = new App({ outdir: tempDir('nag') });
    const stack = new Stack(app, 'S', { env: { account: '123456789012', region: 'eu-west-1' } });
    const role = new iam.Role(stack, 'Role', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['ec2:TerminateInstances', 's3:Get*'],
        resources: [stack.formatArn({ service: 'ec2', resource: 'instance', resourceName: '*' })],
      }),
    );
    return { app, stack, role };
  }

  test('finds what cdk-nag reports: wildcard actions and resources of Allow statements', () => {
    const { stack, role } = policyStack();
    const policy = role.node.findChild('DefaultPolicy').node.defaultChild as iam.CfnPolicy;
    expect(wildcardFindings(stack, policy.policyDocument).sort()).toEqual([
      'Action::s3:Get*',
      'Resource::arn:<AWS::Partition>:ec2:eu-west-1:123456789012:instance/*',
    ]);
  });

  test('cdk-nag accepts the acknowledged finding and still fails on the other', () => {
    const { app, stack } = policyStack();
    acknowledgeWildcards(stack, [
      { finding: nagFinding('Resource::arn:{partition}:ec2:{region}:{account}:instance/*'), reason: 'instances' },
    ]);
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    let message = '';
    try {
      app.synth();
    } catch (error) {
      message = String(error);
    }
    expect(message).toContain('AwsSolutions-IAM5[Action::s3:Get*]');
    expect(message).not.toContain('instance/*');
  });
});
