// Placeholder so the stacks can bundle this entry point while the control plane is written.
export async function handler(): Promise<void> {
  throw new Error('node-api: not implemented yet');
}
