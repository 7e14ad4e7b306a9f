/**
 * The canonical key of a Gerrit event, for dedupe. The same event reaches us twice (webhook
 * retries, or webhook and SSH stream both), with bodies that differ in shape (`project` is an
 * object through the webhooks plugin, a string over SSH; numbers may be strings on old servers),
 * so the key is built from the fields that identify the event, never from the raw body.
 */
import { createHash } from 'node:crypto';

type Json = Record<string, unknown>;

function object(value: unknown): Json {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Json) : {};
}

function scalar(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'boolean') return String(value);
  return '';
}

/** A number that may arrive as a string ("654") is normalised so both shapes give one key. */
function numberish(value: unknown): string {
  const text = scalar(value).trim();
  return /^\d+$/.test(text) ? String(Number(text)) : text;
}

function account(value: unknown): string {
  const who = object(value);
  return scalar(who.username) || scalar(who.email) || scalar(who.name);
}

export function canonicalEventKey(raw: unknown): string {
  const event = object(raw);
  const type = scalar(event.type);
  const change = object(event.change);
  const patchSet = object(event.patchSet);
  const refUpdate = object(event.refUpdate);
  const parts: string[] = [
    type,
    scalar(change.project) || scalar(refUpdate.project),
    scalar(change.branch),
    numberish(change.number),
    numberish(patchSet.number),
    scalar(patchSet.revision),
  ];
  switch (type) {
    case 'patchset-created':
      // One per patchset: identified fully by change, patchset and revision.
      break;
    case 'ref-updated':
      parts.push(scalar(refUpdate.refName), scalar(refUpdate.oldRev), scalar(refUpdate.newRev));
      break;
    case 'comment-added': {
      // Two identical "recheck" comments are two events: the creation time tells them apart.
      const approvals = Array.isArray(event.approvals) ? event.approvals : [];
      parts.push(
        account(event.author),
        scalar(event.comment),
        numberish(event.eventCreatedOn),
        ...approvals.map((a) => {
          const approval = object(a);
          return `${scalar(approval.type)}=${numberish(approval.value)}/${numberish(approval.oldValue)}`;
        }),
      );
      break;
    }
    default:
      parts.push(
        numberish(event.eventCreatedOn),
        account(event.restorer ?? event.abandoner ?? event.submitter ?? event.uploader ?? event.author),
        scalar(event.newRev),
      );
  }
  return createHash('sha256').update(JSON.stringify(parts), 'utf8').digest('hex');
}
