// Greedy decoding over a mamba-export folder with onnxruntime-node.
//
// The state inputs come from the session's own metadata: every input past.{i}.* has a
// matching output present.{i}.*, with only the batch dimension dynamic. Zeros start a
// fresh prompt; the presents of one call are fed back as the pasts of the next.
import fs from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';

/** A problem the caller can fix; generate.js prints it as one line and exits with 2. */
export class UserError extends Error {}

const ZERO_ARRAYS = {
  float32: (n) => new Float32Array(n),
  float16: (n) => new Uint16Array(n), // onnxruntime-common stores float16 as raw 16-bit words
  float64: (n) => new Float64Array(n),
};

/** Reads DIR/export_info.json after checking that DIR and DIR/model.onnx exist. */
export function readExportFolder(modelDir) {
  if (!fs.existsSync(modelDir) || !fs.statSync(modelDir).isDirectory()) {
    throw new UserError(`--model: folder ${modelDir} does not exist (export one with \`mamba-export export\`)`);
  }
  const modelPath = path.join(modelDir, 'model.onnx');
  if (!fs.existsSync(modelPath)) {
    throw new UserError(`${modelPath} not found: ${modelDir} is not a complete mamba-export folder (export it again)`);
  }
  const infoPath = path.join(modelDir, 'export_info.json');
  if (!fs.existsSync(infoPath)) {
    throw new UserError(`${infoPath} not found: the folder is not a mamba-export output ` +
      '(export it with `mamba-export export`)');
  }
  const info = JSON.parse(fs.readFileSync(infoPath, 'utf8'));
  if (typeof info.needs_custom_ops !== 'boolean') {
    throw new UserError(`${infoPath} has no boolean 'needs_custom_ops'; re-export the folder`);
  }
  return { modelPath, info };
}

function halfToFloat(bits) {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

/** Index of the largest logit at the last position; the first wins ties, as numpy's argmax. */
function argMaxOfLastPosition(logits) {
  const [batch, positions, vocab] = logits.dims;
  if (logits.dims.length !== 3 || batch !== 1) throw new UserError('logits must have shape (1, positions, vocab)');
  const read = logits.type === 'float16' ? (i) => halfToFloat(logits.data[i]) : (i) => Number(logits.data[i]);
  const offset = (positions - 1) * vocab;
  let best = 0;
  let bestValue = read(offset);
  for (let v = 1; v < vocab; v++) {
    const value = read(offset + v);
    if (value > bestValue) {
      bestValue = value;
      best = v;
    }
  }
  return best;
}

function describeStates(session) {
  const slots = [];
  session.inputMetadata.forEach((meta) => {
    if (!meta.name.startsWith('past.')) return;
    const present = 'present.' + meta.name.slice('past.'.length);
    if (!session.outputNames.includes(present)) {
      throw new UserError(`graph input ${meta.name} has no matching output ${present}`);
    }
    if (!(meta.type in ZERO_ARRAYS)) {
      throw new UserError(`graph input ${meta.name} has type ${meta.type}; expected float32 or float16`);
    }
    const dims = meta.shape.map((d, i) => (i === 0 ? 1 : d));
    if (dims.some((d) => typeof d !== 'number')) {
      throw new UserError(`graph input ${meta.name} has a dynamic dimension other than batch: ${meta.shape}`);
    }
    slots.push({ past: meta.name, present, dims, type: meta.type });
  });
  if (slots.length === 0) throw new UserError('the graph has no past.* state inputs; is it a mamba-export model?');
  return slots;
}

export class MambaGenerator {
  static async create(modelPath, { provider = 'cpu' } = {}) {
    let session;
    try {
      session = await ort.InferenceSession.create(modelPath, { executionProviders: [provider] });
    } catch (error) {
      if (provider === 'cuda') {
        throw new UserError(`--provider cuda: onnxruntime-node could not enable CUDA (${error.message}); ` +
          'install it with `npm ci --onnxruntime-node-install=cuda12` on a CUDA 12 machine');
      }
      throw error;
    }
    return new MambaGenerator(session);
  }

  constructor(session) {
    this.session = session;
    if (!session.outputNames.includes('logits')) {
      throw new UserError("the graph has no 'logits' output (a MambaModel export); " +
        'greedy decoding needs MambaForCausalLM');
    }
    this.hasAttentionMask = session.inputNames.includes('attention_mask');
    const logitsShape = session.outputMetadata.find((meta) => meta.name === 'logits').shape;
    this.vocabSize = typeof logitsShape.at(-1) === 'number' ? logitsShape.at(-1) : null; // null: dynamic
    this.slots = describeStates(session);
  }

  zeroStates() {
    return this.slots.map((slot) => {
      const size = slot.dims.reduce((a, b) => a * b, 1);
      return new ort.Tensor(slot.type, ZERO_ARRAYS[slot.type](size), slot.dims);
    });
  }

  /** One call: returns the next token and replaces `states` with the presents. */
  async step(ids, states) {
    const dims = [1, ids.length];
    const feeds = { input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), dims) };
    if (this.hasAttentionMask) {
      feeds.attention_mask = new ort.Tensor('int64', new BigInt64Array(ids.length).fill(1n), dims);
    }
    this.slots.forEach((slot, i) => { feeds[slot.past] = states[i]; });
    const outputs = await this.session.run(feeds);
    this.slots.forEach((slot, i) => { states[i] = outputs[slot.present]; });
    return argMaxOfLastPosition(outputs.logits);
  }

  /** Greedy decoding of one sequence; returns only the new token ids. */
  async generateGreedy(promptIds, maxNewTokens, eosId = null) {
    const outside = promptIds.find((id) => this.vocabSize !== null && id >= this.vocabSize);
    if (outside !== undefined) {
      throw new UserError(`--ids: token id ${outside} is outside the vocabulary (0..${this.vocabSize - 1})`);
    }
    const generated = [];
    if (maxNewTokens <= 0) return generated;
    const states = this.zeroStates();
    let next = await this.step(promptIds, states);
    generated.push(next);
    while (generated.length < maxNewTokens && next !== eosId) {
      next = await this.step([next], states);
      generated.push(next);
    }
    return generated;
  }
}
