// OPU Hub's status-bar item: which backend `opu` uses here, the device, who holds the lease
// and how long it has left; a warning notification before the lease ends.
//
// Fed by the server extension's GET <base_url>opuhub/status (the environment the hub gave this
// server: opuhub_lab/status.py), read again every POLL_MS; the countdown ticks every second
// from the server's own `seconds_left`, so a browser with a wrong clock still counts right.
// The hub's lease API is not read from here: a fetch cannot complete the lease service's OAuth
// login (it needs a top-level navigation); the hub's pages show every device's state.
//
// Plain JavaScript (no TypeScript step): built with @jupyterlab/builder into a prebuilt
// extension (labextension/build).

import { Notification } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Widget } from '@lumino/widgets';

const PLUGIN_ID = 'opuhub-lab:status';
const POLL_MS = 30000;
const TICK_MS = 1000;

/** '1:02:03', '12:05' or '0:42' (as opuhub_lab.status.format_left). */
export function formatLeft(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/** The item's text (as opuhub_lab.status.label). */
export function labelFor(status, left) {
  const lease = status.lease;
  if (status.backend === 'shared' && lease) {
    // a lease on the shared OPU is a window reserved for this user
    return left !== null
      ? `OPU: shared · reserved · ${formatLeft(left)} left`
      : 'OPU: shared · reserved';
  }
  if (status.backend === 'hardware' && lease) {
    let text = `OPU: hardware ${lease.device || ''}`.trimEnd();
    if (lease.holder) {
      text += ` · ${lease.holder}`;
    }
    if (left !== null) {
      text += ` · ${formatLeft(left)} left`;
    }
    return text;
  }
  return `OPU: ${status.backend}`;
}

function clock(iso) {
  const date = new Date(iso);
  return isNaN(date.getTime())
    ? iso
    : date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

class OPUStatus extends Widget {
  constructor() {
    super();
    this.addClass('opuhub-status');
    this.node.id = 'opuhub-status';
    this.node.textContent = 'OPU: …';
    this.node.title = 'OPU Hub: reading this server’s OPU…';
    this.status = null;
    this.fetchedAt = 0;
    this.warned = new Set();
  }

  secondsLeft() {
    const lease = this.status && this.status.lease;
    if (!lease || lease.seconds_left === null || lease.seconds_left === undefined) {
      return null;
    }
    return Math.max(0, lease.seconds_left - (Date.now() - this.fetchedAt) / 1000);
  }

  update_(status) {
    this.status = status;
    this.fetchedAt = Date.now();
    this.render();
  }

  render() {
    const status = this.status;
    if (!status) {
      return;
    }
    const left = this.secondsLeft();
    this.node.textContent = labelFor(status, left);
    this.node.dataset.backend = status.backend;
    this.node.dataset.secondsLeft = left === null ? '' : String(Math.floor(left));
    this.node.classList.toggle('opuhub-status-hardware', status.backend === 'hardware');
    const warnAt = status.lease && status.lease.warning_seconds;
    this.node.classList.toggle(
      'opuhub-status-ending',
      left !== null && !!warnAt && left <= warnAt
    );
    this.node.title = this.tooltip(status, left);
    this.maybeWarn(status, left);
  }

  tooltip(status, left) {
    const lines = [];
    if (status.backend === 'hardware' && status.lease) {
      const lease = status.lease;
      lines.push(`opu.transform runs on the OPU ${lease.device || ''}, leased to ${lease.holder}.`);
      lines.push(
        lease.expires
          ? `The lease ends at ${clock(lease.expires)} (${formatLeft(left)} left); the hub then stops this server, files are kept.`
          : 'The lease lasts until this server stops.'
      );
      lines.push('%opu close frees the device for others while you work.');
    } else if (status.backend === 'shared') {
      lines.push(
        'opu.transform runs on the hub’s shared OPU: your batches queue with everyone’s, ' +
          'in fair turns (%opu shows your place and share).'
      );
      if (status.lease) {
        lines.push(
          status.lease.expires
            ? `It is reserved for you until ${clock(status.lease.expires)} (${formatLeft(left)} left): only your transforms run meanwhile; then they queue with everyone’s again, and this server keeps running.`
            : 'It is reserved for you until this server stops.'
        );
      }
    } else if (status.backend === 'simulator') {
      lines.push('opu.transform runs on the simulator (CPU): same API, exact |Hx|², no device.');
    } else {
      lines.push('OPU() picks the hardware when a device and its driver are here, else the simulator.');
    }
    return lines.join('\n');
  }

  maybeWarn(status, left) {
    const lease = status.lease;
    if (!lease || left === null) {
      return;
    }
    const key = `${lease.device}@${lease.expires}`;
    const words = warnings(status.backend === 'shared', lease, left);
    if (left <= 0) {
      this.warnOnce(`${key}:ended`, words.ended);
    } else if (lease.warning_seconds && left <= lease.warning_seconds) {
      this.warnOnce(key, words.ending);
    }
  }

  warnOnce(key, [kind, text]) {
    if (!this.warned.has(key)) {
      this.warned.add(key);
      Notification[kind](text, { autoClose: false });
    }
  }
}

/** The lease's two notifications, [kind, text]: a device lease ends with the hub stopping
 *  the server; a window reserved on the shared OPU ends with nothing stopped. */
function warnings(sharedWindow, lease, left) {
  if (sharedWindow) {
    return {
      ended: ['info', 'Your reservation of the shared OPU has ended: your transforms queue ' +
        'with everyone’s again. This server keeps running.'],
      ending: ['warning', `Your reservation of the shared OPU ends at ${clock(lease.expires)} ` +
        `(in ${formatLeft(left)}); your transforms then queue with everyone’s.`]
    };
  }
  return {
    ended: ['error', `Your OPU lease on ${lease.device} has ended: the hub is stopping this ` +
      'server. Your files are kept; start a server again from the hub’s home page.'],
    ending: ['warning', `Your OPU lease on ${lease.device} ends at ${clock(lease.expires)} ` +
      `(in ${formatLeft(left)}). Save your work: the hub then stops this server ` +
      '(your files are kept).']
  };
}

async function readJSON(url, init, settings) {
  const response = await ServerConnection.makeRequest(url, init || {}, settings);
  if (!response.ok) {
    throw new Error(`${url}: HTTP ${response.status}`);
  }
  return response.json();
}

const plugin = {
  id: PLUGIN_ID,
  description: 'OPU backend, device, lease holder and time left in the status bar',
  autoStart: true,
  optional: [IStatusBar],
  activate: (app, statusBar) => {
    const item = new OPUStatus();
    const settings = ServerConnection.makeSettings();
    const statusUrl = URLExt.join(settings.baseUrl, 'opuhub', 'status');

    const poll = async () => {
      try {
        item.update_(await readJSON(statusUrl, {}, settings));
      } catch (error) {
        console.warn('opuhub-lab: cannot read the OPU status', error);
      }
    };

    if (statusBar) {
      statusBar.registerStatusItem(PLUGIN_ID, { item, align: 'left', rank: 50 });
    } else {
      console.info('opuhub-lab: no status bar here; only the lease warning is shown');
    }
    void poll();
    setInterval(poll, POLL_MS);
    setInterval(() => item.render(), TICK_MS);
  }
};

export default plugin;
