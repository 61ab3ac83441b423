import React, { useEffect, useSyncExternalStore } from 'react';
import { useApp, useInput, useStdin } from 'ink';
import type { LabController } from '../lab/controller.js';
import { LabScreen } from './LabScreen.js';
import { commandFor } from './keys.js';

type Properties = {
  readonly controller: LabController;
  readonly title: string;
  readonly target: string;
  readonly footer?: string;
  /** Called on Ctrl+C (raw mode turns it into a key press, not a SIGINT). */
  readonly onInterrupt: () => void;
};

/**
 * The interactive lab: the single input owner of the screen. It maps keys (from the
 * KEY_BINDINGS table) to controller calls and exits when the lab is finished or quit.
 */
export function LabApp({ controller, title, target, footer, onInterrupt }: Properties): React.ReactElement {
  const { exit } = useApp();
  const { isRawModeSupported } = useStdin();
  const state = useSyncExternalStore(
    (fn) => controller.subscribe(fn),
    () => controller.state,
  );

  useEffect(() => {
    if (state.phase === 'finished' || state.phase === 'quit' || state.phase === 'interrupted') {
      // Let the last frame render before unmounting.
      const t = setTimeout(() => exit(), 50);
      return () => clearTimeout(t);
    }
    return undefined;
  }, [state.phase, exit]);

  useInput(
    (input, key) => {
      if (key.ctrl && input === 'c') {
        onInterrupt();
        return;
      }
      const cmd = commandFor(state.phase, input, key);
      const cur = controller.currentStep();
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
        case 'quit':
          controller.quit();
          break;
        default:
          break;
      }
    },
    { isActive: isRawModeSupported === true },
  );

  return (
    <LabScreen
      title={title}
      target={target}
      runnerKind={controller.runner.kind}
      steps={controller.steps}
      state={state}
      preview={controller.preview()}
      sections={controller.sectionSummary()}
      footer={footer}
    />
  );
}
