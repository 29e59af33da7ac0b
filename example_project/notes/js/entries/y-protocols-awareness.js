export * from "y-protocols/awareness";
