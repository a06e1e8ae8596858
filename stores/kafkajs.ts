/**
 * kafkajs, with the node's fixes to it installed first (stores/kafkajs_patches.ts): one of
 * them replaces a module of kafkajs, so it must run before kafkajs loads. Import kafkajs's
 * values from here; its types may come from "kafkajs" itself.
 */
import "./kafkajs_patches.ts";
export { ConfigResourceTypes, Kafka, logLevel, Partitioners } from "kafkajs";
