/** Payload codec (protocol reference B). */
export { ByteReader, ByteWriter } from './bytes.ts';
export { checksum48, fnv1a64 } from './fnv.ts';
export { lz4BlockCompress, lz4BlockCompressBound, lz4BlockDecompress } from './lz4-block.ts';
export {
  DEFAULT_LIB_VERSION,
  decodePayload,
  decodePayloadHeader,
  encodePayload,
  hasPayloadSignature,
  MIN_ROW_BYTES,
  PAYLOAD_HEADER_SIZE,
  PAYLOAD_NCOLS,
  PAYLOAD_SIGNATURE,
  PayloadEncoder,
} from './payload.ts';
export type { DecodedPayload, PayloadDecodeLimits, PayloadEncodeOptions, PayloadHeader } from './payload.ts';
export { decodePk, encodePk } from './pk.ts';
export { decodeValue, encodeValue, valueEncodedSize } from './value.ts';
