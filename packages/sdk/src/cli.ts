import { scopeToResource } from "./scopes";

console.log(scopeToResource(process.argv[2] ?? "https://management.azure.com/.default"));
