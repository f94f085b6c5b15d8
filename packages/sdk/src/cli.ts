// First, before any dependency loads: a readable error on a Node.js older than package.json's engines.
import "./node-version-check";
import { runCli } from "./doctor/doctor-command";

// The bin: the only place that touches the console and the process exit code.
const code = await runCli(process.argv.slice(2), {
  out: (text) => console.log(text),
  err: (text) => console.error(text),
});
process.exit(code);
