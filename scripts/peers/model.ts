/** The local model directory lives in src/engine (the lab's Dynamo engine builds it too). */
export * from '../../src/engine/model.js';
