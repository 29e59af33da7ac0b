export * from "yjs";
