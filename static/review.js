// Suggests people by name or code while a code is typed on the review page (URL from data-people-url).
'use strict'

;(() => {
  const list = document.getElementById('people')
  if (!list) return
  const config = list.dataset
  let timer = null

  async function suggest(text) {
    const response = await fetch(`${config.peopleUrl}?q=${encodeURIComponent(text)}`, { credentials: 'same-origin' })
    const people = response.ok ? await response.json() : []
    list.replaceChildren(
      ...people.map((person) => {
        const option = document.createElement('option')
        option.value = person.code
        option.label = person.name + (person.group ? ` (${person.group})` : '')
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
})()
