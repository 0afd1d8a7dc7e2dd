// Refreshes an element from its data-poll URL every few seconds. The server answers 304 when nothing
// changed, so an idle dashboard costs almost nothing; a failed poll just waits for the next one.
'use strict'

;(() => {
  for (const element of document.querySelectorAll('[data-poll]')) {
    const config = element.dataset
    const interval = Number.parseInt(config.interval || '3000', 10)
    let etag = null

    async function poll() {
      try {
        const headers = etag ? { 'If-None-Match': etag } : {}
        const response = await fetch(config.poll, { headers, credentials: 'same-origin', cache: 'no-cache' })
        if (response.status === 200) {
          etag = response.headers.get('ETag')
          element.innerHTML = await response.text()
        }
      } catch {
        // offline for a moment: the next poll tries again
      }
      setTimeout(poll, interval)
    }

    setTimeout(poll, interval)
  }
})()
