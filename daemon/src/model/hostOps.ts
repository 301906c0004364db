/**
 * Zero-copy access to tensor memory on the backends whose memory lives on the CPU (wasm, cpu).
 *
 * Why: on the wasm backend several tfjs kernels are far slower than the work they do (measured on this CPU:
 * a 4096x512 transpose ~14-22 ms, `slice`/`unstack` copy the whole input once per output, broadcast multiply
 * 15x slower than a plain one). The per-head attention and the sampler's decode step therefore move data
 * with plain loops over the tensors' own memory. Only fresh tensors that no one else has seen are written.
 */
import * as tf from '@tensorflow/tfjs-core';

interface WasmBackendLike {
  wasm: { HEAPF32: Float32Array; HEAP32: Int32Array };
  dataIdMap: { get(id: object): { memoryOffset: number } | undefined };
}
interface CpuBackendLike {
  data: { get(id: object): { values?: unknown } | undefined };
}

/** A Float32Array over the tensor's own memory (no copy). Valid until the next tfjs call on wasm (heap may grow). */
export function hostView(t: tf.Tensor): Float32Array {
  if (t.dtype !== 'float32') throw new Error(`hostView: expected a float32 tensor, got ${t.dtype}`);
  const name = tf.getBackend();
  if (name === 'wasm') {
    const be = tf.backend() as unknown as WasmBackendLike;
    const info = be.dataIdMap.get(t.dataId);
    if (!info) throw new Error('hostView: tensor has no data on the wasm backend (disposed?)');
    return new Float32Array(be.wasm.HEAPF32.buffer, info.memoryOffset, t.size);
  }
  if (name === 'cpu') {
    const be = tf.backend() as unknown as CpuBackendLike;
    const values = be.data.get(t.dataId)?.values;
    if (values instanceof Float32Array) return values;
    throw new Error('hostView: tensor has no float32 values on the cpu backend');
  }
  throw new Error(`hostView: backend '${name}' keeps tensors off the CPU; use the tensor code path`);
}

interface WasmOutputBackend {
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
}

/**
 * Make a float32 tensor whose values `fill` writes in place. On wasm the memory comes straight from the heap
 * and is NOT initialised (tf.zeros would build a JS array and copy it in): `fill` must write every element,
 * or clear `dst` first. Take views of input tensors inside `fill`: allocating may grow (and move) the heap.
 */
export function hostTensor<R extends tf.Rank>(shape: number[], fill: (dst: Float32Array) => void): tf.Tensor<R> {
  if (tf.getBackend() === 'wasm') {
    const be = tf.backend();
    const info = (be as unknown as WasmOutputBackend).makeOutput(shape, 'float32');
    const out = tf.engine().makeTensorFromTensorInfo(info, be) as tf.Tensor<R>;
    fill(hostView(out));
    return out;
  }
  const arr = new Float32Array(shape.reduce((a, b) => a * b, 1));
  fill(arr);
  return tf.tensor(arr, shape, 'float32') as unknown as tf.Tensor<R>;
}
