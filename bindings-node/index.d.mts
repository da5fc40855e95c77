// ESM view of index.d.ts: the same named exports, plus the module object as default.
import * as meterline from './index.js';

export * from './index.js';
export default meterline;
