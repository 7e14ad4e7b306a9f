/**
 * The CDN's paths (lib/public-cdn.ts): logs are sandboxed, and the rolling images (the root one
 * and each branch's under /images/<branch>/) are cached briefly while versioned images stay immutable.
 */
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { PublicCdn } from '../../lib/public-cdn';

interface Behaviour {
  PathPattern: string;
  CachePolicyId: unknown;
  ResponseHeadersPolicyId: unknown;
}

function synthCdn(latestImageName?: string): Template {
  const stack = new Stack(new App(), 'Cdn');
  new PublicCdn(stack, 'Cdn', {
    imagesBucket: new s3.Bucket(stack, 'Images'),
    logsBucket: new s3.Bucket(stack, 'Logs'),
    accessLogsBucket: new s3.Bucket(stack, 'AccessLogs', {
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
    }),
    ...(latestImageName ? { latestImageName } : {}),
  });
  return Template.fromStack(stack);
}

function distributionConfig(template: Template): {
  DefaultCacheBehavior: Omit<Behaviour, 'PathPattern'>;
  CacheBehaviors: Behaviour[];
} {
  const [distribution] = Object.values(template.findResources('AWS::CloudFront::Distribution'));
  return distribution?.Properties.DistributionConfig;
}

function logicalIdOf(template: Template, type: string, comment: RegExp): string {
  const found = Object.entries(template.findResources(type)).filter(([, resource]) =>
    comment.test(JSON.stringify(resource.Properties)),
  );
  expect(found).toHaveLength(1);
  return found[0]![0];
}

const template = synthCdn();
const config = distributionConfig(template);
const behaviour = (pattern: string) => config.CacheBehaviors.find((b) => b.PathPattern === pattern);

test('logs are served with Content-Security-Policy: sandbox and nosniff, whatever the upload said', () => {
  const policyId = logicalIdOf(template, 'AWS::CloudFront::ResponseHeadersPolicy', /CI logs/);
  const [policy] = Object.values(template.findResources('AWS::CloudFront::ResponseHeadersPolicy'));
  expect(policy?.Properties.ResponseHeadersPolicyConfig.SecurityHeadersConfig).toEqual({
    ContentSecurityPolicy: { ContentSecurityPolicy: 'sandbox', Override: true },
    ContentTypeOptions: { Override: true },
    FrameOptions: { FrameOption: 'SAMEORIGIN', Override: true },
    ReferrerPolicy: { ReferrerPolicy: 'strict-origin-when-cross-origin', Override: true },
    StrictTransportSecurity: { AccessControlMaxAgeSec: 31536000, Override: true },
    XSSProtection: { Protection: true, ModeBlock: true, Override: true },
  });
  expect(behaviour('/logs/*')?.ResponseHeadersPolicyId).toEqual({ Ref: policyId });
  // Only the logs carry the sandbox: the images and the agent keep the managed security headers.
  for (const other of config.CacheBehaviors.filter((b) => b.PathPattern !== '/logs/*')) {
    expect(other.ResponseHeadersPolicyId).not.toEqual({ Ref: policyId });
  }
});

test("each branch's rolling image, checksum and latest.json are cached briefly, ahead of the immutable /images/*", () => {
  const latestPolicy = { Ref: logicalIdOf(template, 'AWS::CloudFront::CachePolicy', /rolling image/) };
  expect(config.CacheBehaviors.map((b) => b.PathPattern)).toEqual([
    '/images/*/akanda-appliance-latest.qcow2*',
    '/images/*/latest.json',
    '/images/*',
    '/agent/*',
    '/logs/*',
  ]);
  expect(config.DefaultCacheBehavior.CachePolicyId).toEqual(latestPolicy);
  expect(behaviour('/images/*/akanda-appliance-latest.qcow2*')?.CachePolicyId).toEqual(latestPolicy);
  expect(behaviour('/images/*/latest.json')?.CachePolicyId).toEqual(latestPolicy);
  expect(behaviour('/images/*')?.CachePolicyId).not.toEqual(latestPolicy);
});

test('the rolling pattern follows appliance.latestImageName', () => {
  const patterns = distributionConfig(synthCdn('appliance-rolling.qcow2')).CacheBehaviors.map((b) => b.PathPattern);
  expect(patterns).toContain('/images/*/appliance-rolling.qcow2*');
});
