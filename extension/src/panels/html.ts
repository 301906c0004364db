/**
 * The HTML shell of every panel: a strict Content-Security-Policy (no inline script without the nonce, no
 * remote anything), the stylesheet and the single webview bundle through `asWebviewUri`. No vscode import:
 * URIs come in as strings so this is unit-tested.
 */
import { randomBytes } from 'node:crypto';
import type { PanelKind } from '../webviewProtocol';

export function makeNonce(): string {
  return randomBytes(18).toString('base64').replace(/[^A-Za-z0-9]/g, '');
}

export function contentSecurityPolicy(cspSource: string, nonce: string): string {
  return [
    `default-src 'none'`,
    `style-src ${cspSource}`,
    `img-src ${cspSource} data:`,
    `font-src ${cspSource}`,
    `script-src 'nonce-${nonce}'`,
  ].join('; ');
}

const escapeAttr = (s: string) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function panelHtml(opts: { kind: PanelKind; cspSource: string; nonce: string; scriptUri: string; styleUri: string; title: string }): string {
  const { kind, cspSource, nonce, scriptUri, styleUri, title } = opts;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${escapeAttr(contentSecurityPolicy(cspSource, nonce))}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${escapeAttr(styleUri)}">
<title>${escapeAttr(title)}</title>
</head>
<body data-panel="${escapeAttr(kind)}">
<div id="app" role="main"><p class="muted">Loading…</p></div>
<script nonce="${escapeAttr(nonce)}" src="${escapeAttr(scriptUri)}"></script>
</body>
</html>`;
}
