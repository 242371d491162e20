#!/usr/bin/env node
// Greedy generation from a mamba-export folder with onnxruntime-node:
//
//   node generate.js --model DIR --ids 1,2,3 [--max-new-tokens N] [--provider cpu|cuda] [--eos-id ID]
//
// Prints the new token ids on one line, separated by spaces. Exit status 2 (with one
// line on stderr) for a problem the caller can fix, 1 for an ONNX Runtime failure.
import { MambaGenerator, UserError, readExportFolder } from './mamba.js';

const USAGE = 'usage: node generate.js --model DIR --ids 1,2,3 [--max-new-tokens N] ' +
  '[--provider cpu|cuda] [--eos-id ID]';

function parseInteger(flag, text) {
  if (!/^-?\d+$/.test(text)) throw new UserError(`${flag} expects an integer, got '${text}'`);
  return Number.parseInt(text, 10);
}

function parseArgs(argv) {
  const args = { maxNewTokens: 20, provider: 'cpu', eosId: null };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '-h' || flag === '--help') return { help: true };
    if (i + 1 >= argv.length) throw new UserError(`${flag} needs a value (see --help)`);
    const value = argv[++i];
    if (flag === '--model') args.model = value;
    else if (flag === '--ids') args.ids = value.split(',').map((t) => parseInteger('--ids', t.trim()));
    else if (flag === '--max-new-tokens') args.maxNewTokens = parseInteger(flag, value);
    else if (flag === '--eos-id') args.eosId = parseInteger(flag, value);
    else if (flag === '--provider') {
      if (value !== 'cpu' && value !== 'cuda') throw new UserError(`--provider expects cpu or cuda, got '${value}'`);
      args.provider = value;
    } else if (flag === '--custom-ops') {
      throw new UserError('--custom-ops: onnxruntime-node has no way to register a custom-op library; ' +
        'export the model with --backend standard for Node.js');
    } else throw new UserError(`unknown flag '${flag}' (see --help)`);
  }
  if (!args.model) throw new UserError('--model DIR is required (an exported mamba-export folder)');
  if (!args.ids || args.ids.some((id) => id < 0)) {
    throw new UserError('--ids is required, like --ids 1,2,3 (non-negative token ids of the prompt)');
  }
  return args;
}

async function main(argv) {
  const args = parseArgs(argv);
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  const { modelPath, info } = readExportFolder(args.model);
  if (info.needs_custom_ops) {
    throw new UserError(`${args.model} uses the SelectiveScan custom op, and onnxruntime-node cannot register ` +
      'custom-op libraries; export with `mamba-export export --backend standard` for Node.js');
  }
  if (info.dtype === 'bf16') {
    throw new UserError(`${args.model} is a bf16 export, and onnxruntime-node has no bfloat16 tensors; ` +
      'export with `--dtype fp16` or `--dtype fp32` for Node.js');
  }
  const generator = await MambaGenerator.create(modelPath, { provider: args.provider });
  const ids = await generator.generateGreedy(args.ids, args.maxNewTokens, args.eosId);
  console.log(ids.join(' '));
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (error) => {
    const userError = error instanceof UserError;
    console.error(`error: ${userError ? '' : 'onnxruntime: '}${error.message}`);
    process.exitCode = userError ? 2 : 1;
  },
);
