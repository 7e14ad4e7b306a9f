/** `POST /node/claim|result|heartbeat|upload` behind a Function URL: lambda/control/node-api.ts. */
import type { LambdaFunctionURLEvent, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { MAX_BODY_BYTES } from '../control/http';
import { handleNodeRequest } from '../control/node-api';
import { awsPorts, logger, withMetrics } from './aws-ports';
import { requestBody, toResult } from './function-url';

/** Every invocation ends by writing the metrics it recorded (EMF lines). */
export const handler = withMetrics(handle);

async function handle(event: LambdaFunctionURLEvent): Promise<APIGatewayProxyStructuredResultV2> {
  if (event.requestContext?.http?.method !== 'POST') return toResult({ status: 405, body: { error: 'POST only' } });
  const body = requestBody(event);
  if (body.length > MAX_BODY_BYTES) return toResult({ status: 413, body: { error: 'body too large' } });
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return toResult({ status: 400, body: { error: 'body is not JSON' } });
  }
  try {
    return toResult(await handleNodeRequest(awsPorts(), event.rawPath ?? '', parsed));
  } catch (error) {
    logger.error('node API failed', {
      path: (event.rawPath ?? '').slice(0, 40),
      error: error instanceof Error ? error.message : String(error),
    });
    return toResult({ status: 500, body: { error: 'internal error' } });
  }
}
