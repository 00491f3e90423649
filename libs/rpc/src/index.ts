// @starling/rpc: the gRPC contracts between roles (proto files in ../proto) and their generated types.
import { fileURLToPath } from 'node:url';
import { loadPackageDefinition } from '@grpc/grpc-js';
import { loadSync, type Options } from '@grpc/proto-loader';
import type { ProtoGrpcType } from './generated/delivery.ts';

export type { DeliverBatch, DeliverBatch__Output } from './generated/starling/delivery/v1/DeliverBatch.ts';
export type {
  DeliverRequest,
  DeliverRequest__Output,
} from './generated/starling/delivery/v1/DeliverRequest.ts';
export type { DeliverResult, DeliverResult__Output } from './generated/starling/delivery/v1/DeliverResult.ts';
export type {
  DeliverResults,
  DeliverResults__Output,
} from './generated/starling/delivery/v1/DeliverResults.ts';
export type { DeliveryClient, DeliveryHandlers } from './generated/starling/delivery/v1/Delivery.ts';

/**
 * How the proto files are turned into runtime messages. The generated types describe exactly these
 * options (the generator passes them as flags), so both must change together.
 */
export const LOADER_OPTIONS = { oneofs: true, defaults: true } as const satisfies Options;

/** Call metadata key naming the edge a Deliver stream addresses. */
export const EDGE_ID_METADATA = 'starling-edge-id';

/** The `starling.delivery.v1` package: the `Delivery` service's client constructor and definition. */
export type DeliveryPackage = ProtoGrpcType['starling']['delivery']['v1'];

let deliveryPackage: DeliveryPackage | undefined;

/** Loads `delivery.proto` once per process. */
export function loadDeliveryPackage(): DeliveryPackage {
  if (deliveryPackage === undefined) {
    const definition = loadSync(
      fileURLToPath(new URL('../proto/delivery.proto', import.meta.url)),
      LOADER_OPTIONS,
    );
    // The generated ProtoGrpcType is the typed view of exactly this definition.
    const loaded = loadPackageDefinition(definition) as unknown as ProtoGrpcType;
    deliveryPackage = loaded.starling.delivery.v1;
  }
  return deliveryPackage;
}
