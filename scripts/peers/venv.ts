/** The peers venv lives in src/engine (the lab's Dynamo engine creates it too). */
export * from '../../src/engine/venv.js';
