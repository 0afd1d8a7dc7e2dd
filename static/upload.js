// The batch upload page. Uppy sends each file as the raw body of a PUT, a few at a time. Before sending,
// every file is fingerprinted (SHA-256) and the server says which (name, hash) pairs the batch already
// holds: those are skipped, so adding the same folder again after a crash or a closed tab sends only what
// is missing. Network failures are retried, quickly by Uppy, then here with growing delays and at once
// when the browser is back online. Files the server refuses are listed with its reason, not retried.
'use strict'

;(() => {
  const page = document.getElementById('upload-page')
  if (!page) return
  const config = page.dataset
  const problem = document.getElementById('upload-problem')

  function showProblem(message) {
    problem.textContent = message
    problem.hidden = !message
  }

  async function postJSON(url, body) {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRFToken': config.csrf },
      body: JSON.stringify(body ?? {}),
    })
    const data = await response.json().catch(() => ({}))
    if (!response.ok) throw new Error(data.message || `The server answered ${response.status}.`)
    return data
  }

  if (config.accepting !== 'yes') {
    document.getElementById('upload-reopen').addEventListener('click', () => {
      postJSON(config.reopenUrl).then(() => location.reload(), (error) => showProblem(error.message))
    })
    return
  }

  const PARALLEL_UPLOADS = 4
  // After Uppy's own quick retries (under 3 s) fail, the network is down for longer: wait, then try again.
  const RETRY_DELAYS_S = [2, 5, 10, 20, 30]
  const PRESENT_SLICE = 500
  const isTransient = (status) => status === 0 || status === 408 || status === 429 || status >= 500
  // The file itself is the problem: sending it again would not help.
  const FILE_REFUSED = new Set([413, 415, 422])

  const extensions = new Set(config.extensions.split(','))
  const maxBytes = Number(config.maxBytes)
  const maxZipBytes = Number(config.maxZipBytes)
  const summary = document.getElementById('upload-summary')
  const refusedBox = document.getElementById('upload-refused-box')
  const fingerprints = new Map() // file id -> Promise of its SHA-256 (hex), started as soon as it is added
  const refusals = new Map() // file id -> the server's reason
  const counts = { sent: 0, alreadyThere: 0, refused: 0 }
  let hashing = Promise.resolve() // one file read and hashed at a time: two did not go faster
  let retryRound = 0
  let retryTimer = null
  let retryAt = 0
  let stopped = false // a refusal that holds for every file: no point in retrying until someone acts

  const relativeName = (file) => (file.meta.relativePath || file.name).replace(/^\/+/, '')
  const megabytes = (bytes) => Math.floor(bytes / 1048576)

  function extensionOf(name) {
    const dot = name.lastIndexOf('.')
    return dot < 0 ? '' : name.slice(dot).toLowerCase()
  }

  function listRefused(name, reason) {
    const item = document.createElement('li')
    item.textContent = `${name}: ${reason}`
    document.getElementById('upload-refused').append(item)
    counts.refused += 1
    document.getElementById('upload-refused-count').textContent = counts.refused
    refusedBox.hidden = false
  }

  function onBeforeFileAdded(file, files) {
    if (Object.hasOwn(files, file.id)) return false // the same file added again: it is in the list already
    const name = relativeName(file)
    // Camera and OS clutter (.DS_Store, ._IMG_0001.JPG, .Trashes) is left out silently, as the CLI does.
    if (name.split('/').some((part) => part.startsWith('.'))) return false
    const extension = extensionOf(name)
    const limit = extension === '.zip' ? maxZipBytes : maxBytes
    let reason = null
    if (!extensions.has(extension)) reason = 'not a photo or a .zip'
    else if (file.size > limit) reason = `larger than the limit of ${megabytes(limit)} MB`
    else if (Object.values(files).some((other) => relativeName(other) === name)) {
      // Two cards with the same folder names: the second file would replace the first in the batch.
      reason = 'another file with this name is in the list: upload each card as its own batch'
    }
    if (reason) listRefused(name, reason)
    return reason === null
  }

  const uppy = new Uppy.Uppy({ autoProceed: true, onBeforeFileAdded })
    .use(Uppy.Dashboard, {
      inline: true,
      target: '#uppy-dashboard',
      width: '100%',
      height: 420,
      fileManagerSelectionType: 'both',
      disableThumbnailGenerator: true, // hundreds of 12 MB JPEGs: thumbnails would eat memory and time
      hidePauseResumeButton: true,
      disableInformer: true, // one "failed" bubble per file during a network drop; the summary says it once
      proudlyDisplayPoweredByUppy: false,
      note: `Photos up to ${megabytes(maxBytes)} MB each, or a .zip of a card`,
    })
    .use(Uppy.XHRUpload, {
      endpoint: config.filesUrl,
      method: 'PUT',
      formData: false,
      limit: PARALLEL_UPLOADS,
      headers: (file) => ({
        'Content-Type': 'application/octet-stream',
        'X-CSRFToken': config.csrf,
        'X-File-Name': encodeURIComponent(relativeName(file)),
      }),
      shouldRetry: (xhr) => isTransient(xhr.status),
    })

  uppy.on('file-added', (file) => {
    if (extensionOf(relativeName(file)) === '.zip') return // a zip is sent whole; the server keeps each photo once
    const fingerprint = hashing.then(() => sha256(file.data))
    hashing = fingerprint.catch(() => null)
    fingerprints.set(file.id, fingerprint)
  })
  uppy.on('file-removed', (file) => fingerprints.delete(file.id))

  uppy.addPreProcessor(async (fileIDs) => {
    const files = fileIDs.map((id) => uppy.getFile(id))
      .filter((file) => file && !file.progress.uploadComplete && fingerprints.has(file.id))
    const entries = []
    for (const file of files) {
      const hash = await fingerprints.get(file.id).catch(() => null)
      if (hash) entries.push({ id: file.id, name: relativeName(file), size: file.size, sha256: hash })
      summary.textContent = `Checking which files the batch already has: ${entries.length} of ${files.length}`
    }
    const present = await askWhichArePresent(entries)
    for (const entry of entries) {
      const file = uppy.getFile(entry.id) // gone if removed from the list meanwhile
      if (file && present.has(`${entry.name}\n${entry.sha256}`)) markAlreadyThere(file)
    }
    render()
  })

  async function askWhichArePresent(entries) {
    const present = new Set()
    try {
      for (let start = 0; start < entries.length; start += PRESENT_SLICE) {
        const slice = entries.slice(start, start + PRESENT_SLICE).map(({ name, size, sha256 }) => ({ name, size, sha256 }))
        const answer = await withRetries(() => postJSON(config.presentUrl, slice))
        for (const found of answer.present) present.add(`${found.name}\n${found.sha256}`)
      }
    } catch (error) {
      // Sending a file the batch has is only slower: the server keeps each (name, content) once.
      showProblem(`Could not ask the server which files it has (${error.message}); sending them all.`)
    }
    return present
  }

  async function withRetries(attempt, delaysMs = [1000, 3000]) {
    for (const delay of delaysMs) {
      try {
        return await attempt()
      } catch {
        await new Promise((resolve) => setTimeout(resolve, delay))
      }
    }
    return attempt()
  }

  function markAlreadyThere(file) {
    counts.alreadyThere += 1
    uppy.setFileState(file.id, {
      progress: {
        ...file.progress,
        uploadStarted: Date.now(),
        uploadComplete: true,
        complete: true,
        percentage: 100,
        bytesUploaded: file.size,
        bytesTotal: file.size,
      },
    })
  }

  function serverMessage(xhr, fallback) {
    return responseBody(xhr)?.message || fallback
  }

  // Every answer about a file carries the batch's counts after it: the page shows the server's figures.
  function showBatchCounts(body) {
    if (typeof body?.stored === 'number') document.getElementById('batch-stored').textContent = body.stored
    if (typeof body?.rejected === 'number') document.getElementById('batch-rejected').textContent = body.rejected
  }

  function responseBody(xhr) {
    try {
      return JSON.parse(xhr.responseText)
    } catch {
      return null
    }
  }

  uppy.on('upload-success', (file, response) => {
    if (response.body?.already_present) counts.alreadyThere += 1
    else counts.sent += 1
    showBatchCounts(response.body)
    render()
  })

  uppy.on('upload-error', (file, error, xhr) => {
    const request = xhr ?? error?.request
    const status = request?.status ?? 0
    if (FILE_REFUSED.has(status)) {
      refusals.set(file.id, serverMessage(request, `refused (${status})`))
      showBatchCounts(responseBody(request))
    } else if (status >= 500) {
      showProblem(`${serverMessage(request, `The server answered ${status}.`)} Trying again.`)
    } else if (!isTransient(status)) {
      // Logged out, form expired, batch closed: every file would fail alike until someone acts.
      stopped = true
      showProblem(`${serverMessage(request, `The server answered ${status}.`)} Files already sent are kept.`)
    }
  })

  uppy.on('complete', () => {
    for (const [id, reason] of refusals) {
      const file = uppy.getFile(id)
      if (file) {
        listRefused(relativeName(file), reason)
        uppy.removeFile(id)
      }
    }
    refusals.clear()
    const waiting = uppy.getFiles().filter((file) => file.error).length
    if (waiting && !stopped) scheduleRetry()
    else if (!waiting) retryRound = 0
    render()
    if (!waiting && allIn() && !document.getElementById('upload-hold').checked) startProcessing()
  })

  const allIn = () => uppy.getFiles().some((file) => file.progress.uploadComplete)
    && uppy.getFiles().every((file) => file.progress.uploadComplete)

  // The upload is complete: processing starts by itself, unless more cards are coming into this batch.
  async function startProcessing() {
    try {
      await postJSON(config.completeUrl)
      location.reload()
    } catch (error) {
      showProblem(error.message)
    }
  }

  function scheduleRetry() {
    if (retryTimer) return
    const seconds = RETRY_DELAYS_S[Math.min(retryRound, RETRY_DELAYS_S.length - 1)]
    retryRound += 1
    retryAt = Date.now() + seconds * 1000
    retryTimer = setTimeout(retryNow, seconds * 1000)
  }

  function retryNow() {
    clearTimeout(retryTimer)
    retryTimer = null
    if (!stopped && uppy.getFiles().some((file) => file.error)) uppy.retryAll()
  }

  uppy.on('retry-all', () => { // ours, or the Retry button after the user fixed what stopped us
    stopped = false
    showProblem('')
  })

  window.addEventListener('online', retryNow)

  function render() {
    const files = uppy.getFiles()
    const done = files.filter((file) => file.progress.uploadComplete).length
    const waiting = files.filter((file) => file.error).length
    let text = `${done} of ${files.length} files are in the batch: ${counts.sent} sent now, `
      + `${counts.alreadyThere} were there already.`
    if (counts.refused) text += ` ${counts.refused} not uploaded (listed below).`
    if (retryTimer) {
      const seconds = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000))
      text += ` Upload interrupted: ${waiting} waiting, trying again in ${seconds} s.`
    }
    summary.textContent = text
    Object.assign(summary.dataset, { total: files.length, done, waiting, ...counts })
  }
  setInterval(() => retryTimer && render(), 1000)

  document.getElementById('upload-complete').addEventListener('click', async () => {
    const unfinished = uppy.getFiles().filter((file) => !file.progress.uploadComplete).length
    if (unfinished && !confirm(`${unfinished} files are not uploaded yet. Start processing without them?`)) return
    await startProcessing()
  })

  window.addEventListener('beforeunload', (event) => {
    if (uppy.getFiles().some((file) => !file.progress.uploadComplete)) event.preventDefault()
  })

  async function sha256(blob) {
    const bytes = await blob.arrayBuffer()
    // crypto.subtle exists only in secure contexts (HTTPS, localhost); the venue LAN may be plain HTTP.
    if (!globalThis.crypto?.subtle) return sha256InScript(bytes)
    return toHex(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)))
  }

  function toHex(bytes) {
    return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('')
  }

  // FIPS 180-4 SHA-256. The constants are the fractional parts of the cube roots (K) and square roots (H)
  // of the first primes.
  const PRIMES = []
  for (let n = 2; PRIMES.length < 64; n++) if (PRIMES.every((p) => n % p)) PRIMES.push(n)
  const fraction32 = (x) => ((x - Math.floor(x)) * 2 ** 32) >>> 0
  const K = Uint32Array.from(PRIMES, (p) => fraction32(Math.cbrt(p)))
  const H0 = Uint32Array.from(PRIMES.slice(0, 8), (p) => fraction32(Math.sqrt(p)))
  const rotr = (x, n) => (x >>> n) | (x << (32 - n))

  function sha256InScript(buffer) {
    const length = buffer.byteLength
    const padded = new Uint8Array((((length + 8) >> 6) + 1) << 6)
    padded.set(new Uint8Array(buffer))
    padded[length] = 0x80
    const view = new DataView(padded.buffer)
    view.setUint32(padded.length - 8, Math.floor(length / 2 ** 29))
    view.setUint32(padded.length - 4, (length * 8) >>> 0)
    const h = H0.slice()
    const w = new Uint32Array(64)
    for (let offset = 0; offset < padded.length; offset += 64) {
      for (let i = 0; i < 16; i++) w[i] = view.getUint32(offset + i * 4)
      for (let i = 16; i < 64; i++) {
        const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3)
        const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10)
        w[i] = w[i - 16] + s0 + w[i - 7] + s1
      }
      let [a, b, c, d, e, f, g, hh] = h
      for (let i = 0; i < 64; i++) {
        const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0
        const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0
        hh = g
        g = f
        f = e
        e = (d + t1) | 0
        d = c
        c = b
        b = a
        a = (t1 + t2) | 0
      }
      h[0] += a
      h[1] += b
      h[2] += c
      h[3] += d
      h[4] += e
      h[5] += f
      h[6] += g
      h[7] += hh
    }
    const digest = new DataView(new ArrayBuffer(32))
    h.forEach((word, i) => digest.setUint32(i * 4, word))
    return toHex(new Uint8Array(digest.buffer))
  }
})()
