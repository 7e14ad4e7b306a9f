/** `POST /webhook/<token>` behind a Function URL: lambda/control/ingest.ts with the AWS ports. */
import type { LambdaFunctionURLEvent, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { ingestWebhook } from '../control/ingest';
import { awsPorts, logger, withMetrics } from './aws-ports';
import { requestBody, toResult } from './function-url';

/** Every invocation ends by writing the metrics it recorded (EMF lines). */
export const handler = withMetrics(handle);

async function handle(event: LambdaFunctionURLEvent): Promise<APIGatewayProxyStructuredResultV2> {
  // The path holds the secret: it is matched here and never logged.
  const match = /^\/webhook\/([^/]*)$/.exec(event.rawPath ?? '');
  if (event.requestContext?.http?.method !== 'POST' || !match) {
    return toResult({ status: 404, body: { error: 'not found' } });
  }
  let token: string;
  try {
    token = decodeURIComponent(match[1] ?? '');
  } catch {
    return toResult({ status: 401, body: { error: 'unknown webhook token' } });
  }
  try {
    return toResult(await ingestWebhook(awsPorts(), { token, body: requestBody(event) }));
  } catch (error) {
    // Non-2xx makes the webhooks plugin redeliver; dedupe makes the redelivery harmless.
    logger.error('ingest failed', { error: error instanceof Error ? error.message : String(error) });
    return toResult({ status: 500, body: { error: 'internal error' } });
  }
}
