/**
 * The browser side of time on page and engaged time: a few lines added next
 * to OpenPanel's tracker (`window.op`), which sends them with `fetch`
 * keepalive like every event, so a closing tab still delivers its hide.
 *
 * - `page_hidden` when the page is hidden (a tab switch, a minimised window,
 *   a closed tab): by D2 the last page of a session lasts until it, so the
 *   last page gets a duration (peers store 0 or nothing).
 * - `page_visible` when it is shown again: by E1 the time between the two is
 *   taken out of the page's engaged time. A page opened hidden (a background
 *   tab) sends no hide; its first `page_visible` tells the buffer it was hidden
 *   from the view until then.
 *
 * The README shows it, the browser test uses it, and `serve` hosts it with the
 * tracker.
 */
export const VISIBILITY_SNIPPET = `document.addEventListener('visibilitychange', function () {
  window.op('track', document.visibilityState === 'hidden' ? 'page_hidden' : 'page_visible');
});`;
