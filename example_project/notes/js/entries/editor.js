// CodeMirror 6 and its Yjs binding, sharing the one Yjs of yjs.js.
export { EditorView, keymap, drawSelection, placeholder, lineNumbers } from "@codemirror/view";
export { EditorState } from "@codemirror/state";
export { defaultKeymap } from "@codemirror/commands";
export { yCollab, yUndoManagerKeymap } from "y-codemirror.next";
