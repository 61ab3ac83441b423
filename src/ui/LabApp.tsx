import React, { useEffect, useState, useSyncExternalStore } from 'react';
import { useApp, useInput, useStdin } from 'ink';
import type { LabController } from '../lab/controller.js';
import { LabScreen, screenModel } from './LabScreen.js';
import { commandFor } from './keys.js';
import { useTerminalSize } from './useTerminalSize.js';

type Properties = {
  readonly controller: LabController;
  readonly title: string;
  readonly labId?: string;
  readonly target: string;
  readonly footer?: string;
  readonly logFile?: string;
  /** Called on Ctrl+C (raw mode turns it into a key press, not a SIGINT). */
  readonly onInterrupt: () => void;
};

/**
 * The interactive lab: the single input owner of the screen. It maps keys (from the
 * KEY_BINDINGS table) to controller calls and exits when the lab is finished or quit.
 */
export function LabApp({ controller, title, labId, target, footer, logFile, onInterrupt }: Properties): React.ReactElement {
  const { exit } = useApp();
  const { isRawModeSupported } = useStdin();
  const { columns, rows } = useTerminalSize();
  const [scroll, setScroll] = useState<number | 'follow'>('follow');
  const [expanded, setExpanded] = useState(false);
  const state = useSyncExternalStore(
    (fn) => controller.subscribe(fn),
    () => controller.state,
  );
  // A new step (or a new run of it) starts at its top / follows its output.
  // biome-ignore lint/correctness/useExhaustiveDependencies: runs on purpose whenever the current step changes
  useEffect(() => {
    setScroll('follow');
    setExpanded(false);
  }, [state.current]);
  useEffect(() => {
    if (state.phase === 'running') setScroll('follow');
  }, [state.phase]);

  useEffect(() => {
    if (state.phase === 'finished' || state.phase === 'quit' || state.phase === 'interrupted') {
      // Let the last frame render before unmounting.
      const t = setTimeout(() => exit(), 50);
      return () => clearTimeout(t);
    }
    return undefined;
  }, [state.phase, exit]);

  const props = {
    title,
    labId,
    target,
    runnerKind: controller.runner.kind,
    steps: controller.steps,
    state,
    preview: controller.preview(),
    sections: controller.sectionSummary(),
    footer,
    logFile,
    columns,
    rows,
    scroll,
    expanded,
  };
  const model = screenModel(props);

  useInput(
    (input, key) => {
      if (key.ctrl && input === 'c') {
        onInterrupt();
        return;
      }
      const cmd = commandFor(state.phase, input, key, model.keyCtx);
      const cur = controller.currentStep();
      const page = Math.max(1, model.room - 2);
      const max = Math.max(0, model.lines.length - (model.room - 1));
      // Functional update: several key presses can arrive before the next render.
      const move = (d: number) => setScroll((prev) => Math.min(max, Math.max(0, (prev === 'follow' ? model.offset : prev) + d)));
      switch (cmd) {
        case 'run':
          if (cur?.step.dangerous) controller.askConfirm();
          else void controller.runCurrent();
          break;
        case 'confirm':
          controller.cancelConfirm();
          void controller.runCurrent();
          break;
        case 'cancel':
          controller.cancelConfirm();
          break;
        case 'skip':
          controller.skip();
          break;
        case 'hint':
          controller.toggleHint();
          break;
        case 'expand':
          setExpanded((e) => !e);
          setScroll(0);
          break;
        case 'scroll-up':
          move(-1);
          break;
        case 'scroll-down':
          move(1);
          break;
        case 'page-up':
          move(-page);
          break;
        case 'page-down':
          move(page);
          break;
        case 'quit':
          controller.quit();
          break;
        default:
          break;
      }
    },
    { isActive: isRawModeSupported === true },
  );

  return <LabScreen {...props} />;
}
