/** Small shared UI pieces: buttons with progress, error boxes, the confirmation dialog, copy buttons. */
import { useEffect, useId, useRef, useState } from 'react';
import type { ButtonHTMLAttributes, ReactNode } from 'react';
import { describeError } from '../api.ts';

export function ErrorBox({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  if (error === null || error === undefined) return null;
  const info = describeError(error);
  return (
    <div className="alert alert-error" role="alert">
      <strong>{info.message}</strong>
      <span>{info.hint}</span>
      {onRetry && (
        <button type="button" className="btn btn-small" onClick={onRetry}>
          Retry
        </button>
      )}
    </div>
  );
}

export function Spinner({ label = 'Loading…' }: { label?: string }) {
  return (
    <span className="spinner-wrap" role="status">
      <span className="spinner" aria-hidden="true" />
      <span>{label}</span>
    </span>
  );
}

type Variant = 'primary' | 'danger' | 'secondary' | 'ghost';

export function Button({ busy = false, busyLabel, variant = 'secondary', children, className, disabled, ...rest }: ButtonHTMLAttributes<HTMLButtonElement> & { busy?: boolean; busyLabel?: string; variant?: Variant }) {
  return (
    <button type="button" {...rest} className={`btn btn-${variant}${className ? ` ${className}` : ''}`} disabled={disabled === true || busy} aria-busy={busy || undefined}>
      {busy && <span className="spinner spinner-inline" aria-hidden="true" />}
      {busy ? (busyLabel ?? children) : children}
    </button>
  );
}

/** Runs an async action with a busy flag and its error. */
export function useAction<A extends unknown[]>(action: (...args: A) => Promise<void>) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const run = async (...args: A): Promise<boolean> => {
    setBusy(true);
    setError(null);
    try {
      await action(...args);
      return true;
    } catch (e) {
      setError(e);
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run, clearError: () => setError(null) };
}

/**
 * A modal dialog: focus moves into it, Tab stays inside, Escape cancels, focus returns to what
 * opened it. `role="dialog"`, `aria-modal`, labelled by its title.
 */
export function Modal({ title, onClose, children, wide = false }: { title: string; onClose: () => void; children: ReactNode; wide?: boolean }) {
  const titleId = useId();
  const ref = useRef<HTMLDivElement>(null);
  const onCloseRef = useRef(onClose);
  onCloseRef.current = onClose;
  useEffect(() => {
    const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    const box = ref.current;
    const focusables = () => Array.from(box?.querySelectorAll<HTMLElement>('button, input, select, textarea, a[href], [tabindex]:not([tabindex="-1"])') ?? []).filter((el) => !el.hasAttribute('disabled'));
    (box?.querySelector<HTMLElement>('[data-autofocus]') ?? focusables()[0])?.focus();
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') {
        e.stopPropagation();
        onCloseRef.current();
      } else if (e.key === 'Tab') {
        const list = focusables();
        const first = list[0];
        const last = list[list.length - 1];
        if (first === undefined || last === undefined) return;
        if (e.shiftKey && document.activeElement === first) {
          e.preventDefault();
          last.focus();
        } else if (!e.shiftKey && document.activeElement === last) {
          e.preventDefault();
          first.focus();
        }
      }
    };
    document.addEventListener('keydown', onKey);
    return () => {
      document.removeEventListener('keydown', onKey);
      opener?.focus();
    };
  }, []);
  return (
    <div className="backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div className={`dialog${wide ? ' dialog-wide' : ''}`} role="dialog" aria-modal="true" aria-labelledby={titleId} ref={ref}>
        <h2 id={titleId}>{title}</h2>
        {children}
      </div>
    </div>
  );
}

/** "Are you sure?" with the action's progress and error inside the dialog. */
export function ConfirmDialog({ title, children, confirmLabel, busyLabel, danger = false, onConfirm, onCancel }: {
  title: string;
  children: ReactNode;
  confirmLabel: string;
  busyLabel?: string;
  danger?: boolean;
  onConfirm: () => Promise<void>;
  onCancel: () => void;
}) {
  const action = useAction(onConfirm);
  return (
    <Modal title={title} onClose={() => !action.busy && onCancel()}>
      <div className="dialog-body">{children}</div>
      <ErrorBox error={action.error} />
      <div className="dialog-actions">
        <Button onClick={onCancel} disabled={action.busy}>
          Cancel
        </Button>
        <Button variant={danger ? 'danger' : 'primary'} busy={action.busy} {...(busyLabel === undefined ? {} : { busyLabel })} onClick={() => void action.run()} data-autofocus>
          {confirmLabel}
        </Button>
      </div>
    </Modal>
  );
}

export function CopyButton({ text, label = 'Copy', what }: { text: string; label?: string; what: string }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // Clipboard refused (insecure origin, permissions): fall back to a hidden textarea.
      const area = document.createElement('textarea');
      area.value = text;
      document.body.appendChild(area);
      area.select();
      document.execCommand('copy');
      area.remove();
    }
    setCopied(true);
    setTimeout(() => setCopied(false), 1500);
  };
  return (
    <button type="button" className="btn btn-secondary btn-small" onClick={() => void copy()} aria-label={`${label} ${what}`}>
      {copied ? 'Copied' : label}
      <span className="visually-hidden" aria-live="polite">{copied ? `${what} copied` : ''}</span>
    </button>
  );
}

export function StatusDot({ tone, children }: { tone: 'ok' | 'warn' | 'error' | 'off'; children: ReactNode }) {
  return (
    <span className={`status status-${tone}`}>
      <span className="dot" aria-hidden="true" />
      {children}
    </span>
  );
}

export function Card({ title, actions, children, className }: { title?: string; actions?: ReactNode; children: ReactNode; className?: string }) {
  return (
    <section className={`card${className ? ` ${className}` : ''}`} aria-label={title}>
      {(title !== undefined || actions !== undefined) && (
        <header className="card-head">
          {title !== undefined && <h3>{title}</h3>}
          {actions !== undefined && <div className="card-actions">{actions}</div>}
        </header>
      )}
      {children}
    </section>
  );
}

/** A one-time secret: shown once, with Copy, until dismissed. */
export function SecretReveal({ label, secret, onDone }: { label: string; secret: string; onDone: () => void }) {
  return (
    <div className="alert alert-secret" role="status">
      <strong>{label}</strong>
      <span>Copy it now: it is shown only once and cannot be retrieved later.</span>
      <div className="secret-row">
        <code className="secret" data-testid="secret">{secret}</code>
        <CopyButton text={secret} what={label} />
        <button type="button" className="btn btn-ghost btn-small" onClick={onDone}>
          Done
        </button>
      </div>
    </div>
  );
}
