import { useId, type ReactNode } from "react";
import { describeError } from "../api/client";

export function ErrorBanner({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <div className="error" role="alert">
      {describeError(error)}
    </div>
  );
}

export function Notice({ children }: { children: ReactNode }) {
  return (
    <div className="notice" role="status">
      {children}
    </div>
  );
}

/** A labelled form control; the label is tied to the control for screen readers and clicks. */
export function Field(props: {
  label: string;
  hint?: ReactNode;
  children: (id: string) => ReactNode;
}) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{props.label}</label>
      {props.children(id)}
      {props.hint ? <div className="hint">{props.hint}</div> : null}
    </div>
  );
}

export function Section(props: { title: string; actions?: ReactNode; children: ReactNode }) {
  return (
    <section className="card" aria-label={props.title}>
      <header className="card-head">
        <h2>{props.title}</h2>
        <div className="actions">{props.actions}</div>
      </header>
      {props.children}
    </section>
  );
}

export function StatusBadge({ status }: { status: string }) {
  return <span className={`badge badge-${status}`}>{status}</span>;
}

/** A horizontal bar of `used` against `limit` (limit null: unlimited). */
export function Meter(props: {
  used: number;
  limit: number | null;
  label: string;
  text?: string;
  /** A progress bar (uploads): full is good news, so it keeps one colour. */
  progress?: boolean;
}) {
  const { used, limit } = props;
  const frac = limit && limit > 0 ? Math.min(1, used / limit) : 0;
  const level = props.progress ? "low" : frac >= 0.9 ? "high" : frac >= 0.7 ? "mid" : "low";
  return (
    <div className="meter" title={props.text}>
      <div
        className="meter-track"
        role="meter"
        aria-label={props.label}
        aria-valuemin={0}
        aria-valuemax={limit ?? undefined}
        aria-valuenow={used}
      >
        <div className={`meter-fill meter-${level}`} style={{ width: `${frac * 100}%` }} />
      </div>
      <span className="meter-text">{props.text}</span>
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}
