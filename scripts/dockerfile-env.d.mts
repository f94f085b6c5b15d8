// Types of scripts/dockerfile-env.mjs for the TypeScript that imports it (the benches, the tests).

/** A Dockerfile this reader cannot read to the environment `docker build` would give the image. */
export declare class DockerfileEnvError extends Error {
  readonly code: "DOCKERFILE_ENV_UNSUPPORTED";
  readonly file: string;
  /** 1-based, the instruction's first line; undefined for the file as a whole. */
  readonly line: number | undefined;
  constructor(file: string, line: number | undefined, message: string);
}

export interface DockerfileEnvOptions {
  /** The base image's environment, which the Dockerfile's ENV overrides in place (default: none). */
  baseEnv?: Readonly<Record<string, string>>;
}

/** The environment of `path`'s final stage, as `KEY: value` in the order the image's config lists them. */
export declare function dockerfileEnv(path: string, options?: DockerfileEnvOptions): Record<string, string>;

/** dockerfileEnv of a Dockerfile's text; `file` names it in errors. */
export declare function parseDockerfileEnv(text: string, file: string, options?: DockerfileEnvOptions): Record<string, string>;

/** Node's own split of NODE_OPTIONS into arguments. */
export declare function nodeOptionsArgv(nodeOptions: string): string[];
