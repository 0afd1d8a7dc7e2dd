// The review page: person suggestions, selection (shift-click ranges), a large view with keys, and a
// confirmation before actions that move many photos. Every URL comes from data-* attributes.
'use strict'

;(() => {
  const form = document.getElementById('correct-form')
  const thumbs = [...document.querySelectorAll('.thumb')]
  const boxes = () => thumbs.map((thumb) => thumb.querySelector('input[name=photo_id]')).filter(Boolean)

  // Person suggestions: "Name (CODE)" options; the server resolves a picked option, a name or a code.
  const list = document.getElementById('people')
  if (list) {
    let timer = null
    const suggest = async (text) => {
      const response = await fetch(`${list.dataset.peopleUrl}?q=${encodeURIComponent(text)}`, { credentials: 'same-origin' })
      const people = response.ok ? await response.json() : []
      list.replaceChildren(
        ...people.map((person) => {
          const option = document.createElement('option')
          option.value = `${person.name} (${person.code})`
          if (person.group) option.label = person.group
          return option
        }),
      )
    }
    for (const input of document.querySelectorAll('input[list=people]')) {
      input.addEventListener('input', () => {
        clearTimeout(timer)
        timer = setTimeout(() => suggest(input.value).catch(() => {}), 200)
      })
    }
  }

  // Selection: a photo shown twice (needs attention, and in its run) is one selection; shift-click a range.
  const status = document.getElementById('selection')
  const selected = () => new Set(boxes().filter((box) => box.checked).map((box) => box.value))
  const showSelection = () => {
    if (!status) return
    const count = selected().size
    status.textContent = count ? `${count} photo${count === 1 ? '' : 's'} selected.` : 'No photo selected.'
  }
  const setPhoto = (value, checked) => {
    for (const box of boxes()) if (box.value === value) box.checked = checked
  }
  let anchor = null
  for (const box of boxes()) {
    box.addEventListener('click', (event) => {
      const all = boxes()
      if (event.shiftKey && anchor !== null) {
        const [from, to] = [all.indexOf(anchor), all.indexOf(box)].sort((a, b) => a - b)
        for (const other of all.slice(from, to + 1)) setPhoto(other.value, box.checked)
      }
      setPhoto(box.value, box.checked)
      anchor = box
      showSelection()
    })
  }

  // Confirm before an action on many photos, and before any form that asks (data-confirm).
  if (form) {
    form.addEventListener('submit', (event) => {
      const count = selected().size
      if (count > Number(form.dataset.confirmOver) && !window.confirm(`Apply this to ${count} photos?`)) {
        event.preventDefault()
      }
    })
  }
  for (const asking of document.querySelectorAll('form[data-confirm]')) {
    asking.addEventListener('submit', (event) => {
      if (!window.confirm(asking.dataset.confirm)) event.preventDefault()
    })
  }

  // The large view: a photo's View button (or Enter on it) opens it; arrows move; a/c/n/x act on the photo
  // shown; p makes it its person's yearbook portrait.
  const viewer = document.getElementById('viewer')
  const image = document.getElementById('viewer-image')
  const title = document.getElementById('viewer-title')
  const reason = document.getElementById('viewer-reason')
  const viewable = thumbs.filter((thumb) => thumb.dataset.full)
  let current = -1
  let opener = null

  const show = (index) => {
    current = (index + viewable.length) % viewable.length
    const thumb = viewable[current]
    image.src = thumb.dataset.full
    image.alt = thumb.dataset.name
    title.textContent = `${thumb.dataset.name} (${current + 1} of ${viewable.length})`
    reason.textContent = thumb.querySelector('.reason')?.textContent || ''
    for (const other of thumbs) other.classList.toggle('current', other === thumb)
  }
  const open = (thumb) => {
    opener = thumb
    viewer.hidden = false
    show(viewable.indexOf(thumb))
    viewer.focus()
  }
  const close = () => {
    viewer.hidden = true
    const box = viewable[current]?.querySelector('input')
    ;(box || opener)?.focus()
  }
  const KINDS = { a: 'assign', c: 'card', n: 'not_card', x: 'exclude' }
  const act = (kind) => {
    if (!form) return
    for (const box of boxes()) box.checked = false
    setPhoto(viewable[current].dataset.photo, true)
    showSelection()
    form.querySelector('#kind').value = kind
    close()
    if (kind === 'assign' || kind === 'card') form.querySelector('#code').focus()
    else form.requestSubmit()
  }

  const portraitForm = document.getElementById('portrait-form')
  const pickPortrait = () => {
    if (!portraitForm) return
    portraitForm.querySelector('#portrait-photo').value = viewable[current].dataset.photo
    close()
    portraitForm.requestSubmit()
  }

  // Arrows move between photos in the grid, in page order, so a keyboard goes through a batch quickly.
  const stops = thumbs.map((thumb) => thumb.querySelector('input, button.view')).filter(Boolean)
  for (const [index, stop] of stops.entries()) {
    stop.closest('.thumb').addEventListener('keydown', (event) => {
      const next = stops[index + ({ ArrowRight: 1, ArrowLeft: -1 }[event.key] || 0)]
      if (next === stop) return
      event.preventDefault()
      next?.focus()
    })
  }

  for (const thumb of viewable) {
    thumb.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') {
        event.preventDefault()
        open(thumb)
      }
    })
    thumb.addEventListener('dblclick', () => open(thumb))
    thumb.querySelector('button.view').addEventListener('click', () => open(thumb))
  }
  if (viewer) {
    viewer.addEventListener('keydown', (event) => {
      if (event.key === 'ArrowRight') show(current + 1)
      else if (event.key === 'ArrowLeft') show(current - 1)
      else if (event.key === 'Escape') close()
      else if (KINDS[event.key]) act(KINDS[event.key])
      else if (event.key === 'p') pickPortrait()
      else return
      event.preventDefault()
    })
    viewer.addEventListener('click', (event) => {
      const button = event.target.closest('[data-viewer]')
      if (!button) return
      const move = { prev: -1, next: 1 }[button.dataset.viewer]
      if (move) show(current + move)
      else close()
    })
  }
})()
