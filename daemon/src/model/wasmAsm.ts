/**
 * A tiny WebAssembly assembler for the one SIMD kernel the sampler needs (attendKernel.ts), written as code
 * so the repository holds no opaque binary. It emits a module that imports `env.memory` and exports
 *
 *   attend(q, kt, v, out, scores, n, hd, cap, kNew, vNew, scale)
 *     (byte addresses; n keys; hd and cap multiples of 16; kNew = 0: nothing to append)
 *
 * which first stores the new key/value (at kNew/vNew) as key n − 1 when kNew ≠ 0, then computes, for one
 * (row, head): s_t = scale·(q·k_t) for t < n, p = softmax(s), out = Σ_t p_t·v_t.
 * exp() is a degree-6 polynomial after range reduction by ln 2 (relative error < 1e-6 for the x ≤ 0 that a
 * max-subtracted softmax feeds it), vectorised over 4 scores at a time.
 */

// Opcodes (WebAssembly core + fixed-width SIMD).
const I32 = 0x7f, F32 = 0x7d, V128 = 0x7b, VOID = 0x40;
const op = {
  block: 0x02, loop: 0x03, br: 0x0c, brIf: 0x0d, end: 0x0b,
  localGet: 0x20, localSet: 0x21, localTee: 0x22,
  f32Load: 0x2a, f32Store: 0x38, i32Const: 0x41, f32Const: 0x43,
  i32Eqz: 0x45, i32GeS: 0x4e, i32Add: 0x6a, i32Sub: 0x6b, i32Mul: 0x6c, i32And: 0x71, i32Shl: 0x74, i32ShrU: 0x76,
  f32Nearest: 0x90, f32Add: 0x92, f32Sub: 0x93, f32Mul: 0x94, f32Div: 0x95, f32Max: 0x97,
  i32TruncF32S: 0xa8, f32ReinterpretI32: 0xbe,
} as const;
const simd = {
  load: 0x00, load32Splat: 0x09, store: 0x0b, const: 0x0c, f32x4Splat: 0x13, i32x4Splat: 0x11, f32x4ExtractLane: 0x1f,
  f32x4Nearest: 0x6a, i32x4Shl: 0xab, i32x4Add: 0xae, f32x4Add: 0xe4, f32x4Sub: 0xe5, f32x4Mul: 0xe6,
  f32x4Max: 0xe9, i32x4TruncSatF32x4S: 0xf8,
} as const;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}
const f32Bytes = (x: number) => [...new Uint8Array(Float32Array.of(x).buffer)];
const str = (s: string) => [...uleb(s.length), ...Buffer.from(s, 'utf8')];
const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];

// Instruction helpers.
const get = (i: number) => [op.localGet, ...uleb(i)];
const set = (i: number) => [op.localSet, ...uleb(i)];
const i32c = (x: number) => [op.i32Const, ...sleb(x)];
const f32c = (x: number) => [op.f32Const, ...f32Bytes(x)];
const v = (code: number, ...imm: number[]) => [0xfd, ...uleb(code), ...imm];
const memarg = (align: number) => [...uleb(align), ...uleb(0)];
const vload = v(simd.load, ...memarg(2));
const vstore = v(simd.store, ...memarg(2));
const vsplat4 = (x: number) => v(simd.const, ...f32Bytes(x), ...f32Bytes(x), ...f32Bytes(x), ...f32Bytes(x));
const vzero = v(simd.const, ...new Array(16).fill(0));
/** while (a < b) { body }: `cond` must push the i32 "stop" condition. */
const whileLoop = (stop: number[], body: number[]) => [op.block, VOID, op.loop, VOID, ...stop, op.brIf, 1, ...body, op.br, 0, op.end, op.end];

// Locals: params 0..10, then ours.
const Q = 0, KT = 1, Vp = 2, OUT = 3, SC = 4, N = 5, HD = 6, CAP = 7, KNEW = 8, VNEW = 9, SCALE = 10;
const T = 11, D = 12, P = 13, HDB = 14, N4 = 15, N16 = 16, QP = 17, G = 18; // i32 (G = hd·16: bytes per group of 4 keys)
const S = 19, MX = 20, Z = 21, X = 22, NN = 23; // f32
const A0 = 24, VMX = 28, VX = 29, VN = 30, VZ = 31, QS = 32; // v128 (A0..A3 = 24..27)

const LOG2E = 1.4426950408889634, LN2_HI = 0.693145751953125, LN2_LO = 1.428606765330187e-6;
const POLY = [1 / 720, 1 / 120, 1 / 24, 1 / 6, 1 / 2, 1, 1]; // Horner, highest degree first

/** exp of the f32 local X (x ≤ 0), leaving the result on the stack. */
function scalarExp(): number[] {
  const out: number[] = [];
  // x = max(x, -87); nn = nearest(x·log2e); x -= nn·ln2 (two parts)
  out.push(...get(X), ...f32c(-87), op.f32Max, ...set(X));
  out.push(...get(X), ...f32c(LOG2E), op.f32Mul, op.f32Nearest, ...set(NN));
  out.push(...get(X), ...get(NN), ...f32c(LN2_HI), op.f32Mul, op.f32Sub, ...get(NN), ...f32c(LN2_LO), op.f32Mul, op.f32Sub, ...set(X));
  out.push(...f32c(POLY[0]!));
  for (const c of POLY.slice(1)) out.push(...get(X), op.f32Mul, ...f32c(c), op.f32Add);
  // · 2^nn, built from the exponent bits
  out.push(...get(NN), op.i32TruncF32S, ...i32c(127), op.i32Add, ...i32c(23), op.i32Shl, op.f32ReinterpretI32, op.f32Mul);
  return out;
}

/** exp of the v128 local VX (4 lanes), leaving the result on the stack. */
function vectorExp(): number[] {
  const out: number[] = [];
  out.push(...get(VX), ...vsplat4(-87), ...v(simd.f32x4Max), ...set(VX));
  out.push(...get(VX), ...vsplat4(LOG2E), ...v(simd.f32x4Mul), ...v(simd.f32x4Nearest), ...set(VN));
  out.push(...get(VX), ...get(VN), ...vsplat4(LN2_HI), ...v(simd.f32x4Mul), ...v(simd.f32x4Sub));
  out.push(...get(VN), ...vsplat4(LN2_LO), ...v(simd.f32x4Mul), ...v(simd.f32x4Sub), ...set(VX));
  out.push(...vsplat4(POLY[0]!));
  for (const c of POLY.slice(1)) out.push(...get(VX), ...v(simd.f32x4Mul), ...vsplat4(c), ...v(simd.f32x4Add));
  out.push(...get(VN), ...v(simd.i32x4TruncSatF32x4S), ...i32c(127), ...v(simd.i32x4Splat), ...v(simd.i32x4Add));
  out.push(...i32c(23), ...v(simd.i32x4Shl), ...v(simd.f32x4Mul));
  return out;
}

const lanes = (local: number, combine: number) => [
  ...get(local), ...v(simd.f32x4ExtractLane, 0), ...get(local), ...v(simd.f32x4ExtractLane, 1), combine,
  ...get(local), ...v(simd.f32x4ExtractLane, 2), combine, ...get(local), ...v(simd.f32x4ExtractLane, 3), combine,
];
const incr = (local: number, by: number[]) => [...get(local), ...by, op.i32Add, ...set(local)];
const scAddr = () => [...get(SC), ...get(T), ...i32c(2), op.i32Shl, op.i32Add]; // sc + 4t
const zeroAcc = () => [0, 1, 2, 3].flatMap((i) => [...vzero, ...set(A0 + i)]);
/** acc_i += QS · v128.load(P + i·stride), i = 0..3 (stride: an i32 local, or a constant when `constStride`) */
const fma4 = (stride: number, constStride = false) => [0, 1, 2, 3].flatMap((i) => [
  ...get(A0 + i), ...get(QS), ...get(P),
  ...(i ? (constStride ? [...i32c(stride * i), op.i32Add] : [...get(stride), ...i32c(i), op.i32Mul, op.i32Add]) : []),
  ...vload, ...v(simd.f32x4Mul), ...v(simd.f32x4Add), ...set(A0 + i),
]);

/**
 * Layouts: keys in groups of 4, kt[((t >> 2)·hd + d)·4 + (t & 3)] (each group a [hd, 4] tile, read as one
 * contiguous stream); values v[t·hd + d]; cap a multiple of 16. Scores are computed 16 keys at a time
 * (4 accumulators, query element splatted), so no horizontal sums; the weighted sum of values runs
 * 16 output elements at a time over all keys.
 */
function attendBody(): number[] {
  const c: number[] = [];
  c.push(...get(HD), ...i32c(2), op.i32Shl, ...set(HDB), ...get(HD), ...i32c(4), op.i32Shl, ...set(G));
  c.push(...get(N), ...i32c(15), op.i32Add, ...i32c(-16), op.i32And, ...set(N16));
  // 0. when kNew ≠ 0, first store the new key and value at position n − 1
  c.push(op.block, VOID, ...get(KNEW), op.i32Eqz, op.brIf, 0);
  c.push(...get(N), ...i32c(1), op.i32Sub, ...set(T));
  c.push(...get(KT), ...get(T), ...i32c(2), op.i32ShrU, ...get(G), op.i32Mul, op.i32Add, ...get(T), ...i32c(3), op.i32And, ...i32c(2), op.i32Shl, op.i32Add, ...set(P));
  c.push(...i32c(0), ...set(D));
  c.push(...whileLoop([...get(D), ...get(HDB), op.i32GeS], [
    ...get(P), ...get(D), ...i32c(2), op.i32Shl, op.i32Add, ...get(KNEW), ...get(D), op.i32Add, op.f32Load, ...memarg(2), op.f32Store, ...memarg(2),
    ...incr(D, i32c(4)),
  ]));
  c.push(...get(Vp), ...get(T), ...get(HDB), op.i32Mul, op.i32Add, ...set(P), ...i32c(0), ...set(D));
  c.push(...whileLoop([...get(D), ...get(HDB), op.i32GeS], [
    ...get(P), ...get(D), op.i32Add, ...get(VNEW), ...get(D), op.i32Add, ...vload, ...vstore, ...incr(D, i32c(16)),
  ]));
  c.push(op.end);
  // 1. scores for keys [0, n16): s_t = scale·Σ_d q_d·kt[d][t]  (keys ≥ n are computed and ignored)
  c.push(...i32c(0), ...set(T));
  c.push(...whileLoop([...get(T), ...get(N16), op.i32GeS], [
    ...zeroAcc(), ...i32c(0), ...set(D), ...get(Q), ...set(QP),
    ...get(KT), ...get(T), ...i32c(2), op.i32ShrU, ...get(G), op.i32Mul, op.i32Add, ...set(P), // group t/4
    ...whileLoop([...get(D), ...get(HD), op.i32GeS], [
      ...get(QP), ...v(simd.load32Splat, ...memarg(2)), ...set(QS),
      ...fma4(G),
      ...incr(P, i32c(16)), ...incr(QP, i32c(4)), ...incr(D, i32c(1)),
    ]),
    ...[0, 1, 2, 3].flatMap((i) => [
      ...scAddr(), ...(i ? [...i32c(16 * i), op.i32Add] : []), ...get(A0 + i), ...get(SCALE), ...v(simd.f32x4Splat), ...v(simd.f32x4Mul), ...vstore,
    ]),
    ...incr(T, i32c(16)),
  ]));
  // 2. max over [0, n): 4 at a time, then the tail
  c.push(...get(N), ...i32c(-4), op.i32And, ...set(N4), ...i32c(0), ...set(T), ...vsplat4(-Infinity), ...set(VMX));
  c.push(...whileLoop([...get(T), ...get(N4), op.i32GeS], [...get(VMX), ...scAddr(), ...vload, ...v(simd.f32x4Max), ...set(VMX), ...incr(T, i32c(4))]));
  c.push(...lanes(VMX, op.f32Max), ...set(MX));
  c.push(...whileLoop([...get(T), ...get(N), op.i32GeS], [...get(MX), ...scAddr(), op.f32Load, ...memarg(2), op.f32Max, ...set(MX), ...incr(T, i32c(1))]));
  // 3. e_t = exp(s_t − max) in place, z = Σ e_t
  c.push(...get(MX), ...v(simd.f32x4Splat), ...set(VMX), ...vzero, ...set(VZ), ...f32c(0), ...set(Z), ...i32c(0), ...set(T));
  c.push(...whileLoop([...get(T), ...get(N4), op.i32GeS], [
    ...scAddr(), ...vload, ...get(VMX), ...v(simd.f32x4Sub), ...set(VX),
    ...vectorExp(), ...set(VX),
    ...scAddr(), ...get(VX), ...vstore,
    ...get(VZ), ...get(VX), ...v(simd.f32x4Add), ...set(VZ), ...incr(T, i32c(4)),
  ]));
  c.push(...whileLoop([...get(T), ...get(N), op.i32GeS], [
    ...scAddr(), op.f32Load, ...memarg(2), ...get(MX), op.f32Sub, ...set(X),
    ...scalarExp(), ...set(S),
    ...scAddr(), ...get(S), op.f32Store, ...memarg(2),
    ...get(Z), ...get(S), op.f32Add, ...set(Z), ...incr(T, i32c(1)),
  ]));
  c.push(...get(Z), ...lanes(VZ, op.f32Add), op.f32Add, ...set(Z));
  c.push(...f32c(1), ...get(Z), op.f32Div, ...set(Z)); // z ← 1/z
  // 4. out[d0..d0+16) = (1/z)·Σ_t e_t·v_t[d0..d0+16), for each block of 16 output elements
  c.push(...i32c(0), ...set(D));
  c.push(...whileLoop([...get(D), ...get(HDB), op.i32GeS], [
    ...zeroAcc(), ...i32c(0), ...set(T), ...get(Vp), ...get(D), op.i32Add, ...set(P),
    ...whileLoop([...get(T), ...get(N), op.i32GeS], [
      ...scAddr(), ...v(simd.load32Splat, ...memarg(2)), ...set(QS),
      ...fma4(16, true),
      ...incr(P, get(HDB)), ...incr(T, i32c(1)),
    ]),
    ...[0, 1, 2, 3].flatMap((i) => [
      ...get(OUT), ...get(D), op.i32Add, ...(i ? [...i32c(16 * i), op.i32Add] : []), ...get(A0 + i), ...get(Z), ...v(simd.f32x4Splat), ...v(simd.f32x4Mul), ...vstore,
    ]),
    ...incr(D, i32c(64)),
  ]));
  c.push(op.end);
  return c;
}

/** The module's bytes (validated and compiled by attendKernel.ts). */
export function buildAttendModule(): Uint8Array<ArrayBuffer> {
  const type = [0x60, ...vec([[I32], [I32], [I32], [I32], [I32], [I32], [I32], [I32], [I32], [I32], [F32]]), ...vec([])];
  const locals = vec([[...uleb(8), I32], [...uleb(5), F32], [...uleb(9), V128]]);
  const body = [...locals, ...attendBody()];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([type])),
    ...section(2, vec([[...str('env'), ...str('memory'), 0x02, 0x00, ...uleb(1)]])),
    ...section(3, vec([uleb(0)])),
    ...section(7, vec([[...str('attend'), 0x00, ...uleb(0)]])),
    ...section(10, vec([[...uleb(body.length), ...body]])),
  ];
  return Uint8Array.from(bytes);
}
