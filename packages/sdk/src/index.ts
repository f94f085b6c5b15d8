export { scopeToResource } from "./scopes";
