/**
 * Checked methods: the guard and the schemas a `@mesh({ ... })` method
 * declares, run by dispatch before (and after) the method itself.
 */
import { describeUntrusted, ForbiddenError, ValidationError, VALIDATION_ISSUE_BOUNDS, type ValidationIssue } from '../protocol/errors.js';
import type { StandardSchemaV1 } from '../protocol/standard-schema.js';
import type { CallContext } from './envelope.js';

/**
 * Decides whether a call may run, from who makes it (the context carries the
 * verified origin and `originAuth`). Only `true` allows: `false` or any other
 * value refuses with a ForbiddenError; a thrown error is the answer as it is.
 */
export type Guard<Node = any> = (context: CallContext, node: Node, method: string) => boolean | Promise<boolean>;

export interface MeshMethodOptions {
  /** one schema per argument, in order; more arguments than schemas are refused */
  args?: readonly StandardSchemaV1[];
  /** checks what the method returns before it is sent */
  result?: StandardSchemaV1;
  /** replaces the class's `static guard` for this method */
  guard?: Guard;
}

/** The output types of a list of argument schemas, as the method receives them. */
export type SchemaOutputs<A extends readonly StandardSchemaV1[]> = { -readonly [K in keyof A]: StandardSchemaV1.InferOutput<A[K]> };

/** Refuses the call unless the guard (the method's, else the class's) returns true. */
export async function runGuard(guard: Guard | undefined, context: CallContext, node: object, method: string): Promise<void> {
  if (guard === undefined) return;
  if ((await guard(context, node, method)) !== true) {
    throw new ForbiddenError(`The guard of "${describeUntrusted(method, 100)}" refused this call; the caller is not allowed to make it.`);
  }
}

/** The arguments as the schemas output them (defaults and transforms applied), or a ValidationError. */
export async function checkArguments(schemas: readonly StandardSchemaV1[], args: unknown[], method: string): Promise<unknown[]> {
  if (args.length > schemas.length) {
    throw new ValidationError(method, 'arguments', [{ path: [schemas.length], message: `expects at most ${schemas.length} argument${schemas.length === 1 ? '' : 's'}, got ${args.length}` }]);
  }
  const checked: unknown[] = [];
  const issues: ValidationIssue[] = [];
  let issueCount = 0;
  for (const [index, schema] of schemas.entries()) {
    const result = await schema['~standard'].validate(args[index]);
    if (result.issues) {
      issueCount += result.issues.length;
      for (const issue of result.issues.slice(0, VALIDATION_ISSUE_BOUNDS.maxIssues - issues.length)) issues.push(boundIssue(issue, [index]));
    } else {
      checked.push(result.value);
    }
  }
  if (issueCount > 0) throw new ValidationError(method, 'arguments', issues, issueCount);
  // Trailing arguments the caller left out stay out, so a method's own default parameters still apply.
  while (checked.length > args.length && checked[checked.length - 1] === undefined) checked.pop();
  return checked;
}

/** The value as the result schema outputs it, or a ValidationError. */
export async function checkResult(schema: StandardSchemaV1, value: unknown, method: string): Promise<unknown> {
  const result = await schema['~standard'].validate(value);
  if (!result.issues) return result.value;
  const issues = result.issues.slice(0, VALIDATION_ISSUE_BOUNDS.maxIssues).map((issue) => boundIssue(issue, []));
  throw new ValidationError(method, 'result', issues, result.issues.length);
}

/** An issue cut to size: keys in a path come from the caller's value, and messages may quote it. */
function boundIssue(issue: StandardSchemaV1.Issue, prefix: number[]): ValidationIssue {
  const { maxMessage, maxPathSegments, maxSegment } = VALIDATION_ISSUE_BOUNDS;
  const path: Array<string | number> = [...prefix];
  for (const segment of (issue.path ?? []).slice(0, maxPathSegments)) {
    const key = typeof segment === 'object' && segment !== null ? segment.key : segment;
    path.push(typeof key === 'number' ? key : typeof key === 'symbol' ? (key.description ?? 'symbol').slice(0, maxSegment) : describeUntrusted(key, maxSegment));
  }
  return { path, message: describeUntrusted(issue.message, maxMessage) };
}
