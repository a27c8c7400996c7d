// What the demo's redraw and the client's queries cost in a page, for the benchmarks. Runs
// IN the page (`page.evaluate(pageCosts, conv)`): medians of 7 idle redraws and of 15 calls
// of each query, in ms, and the size of what they read.
export async function pageCosts(convId) {
  const { ui, render } = await import(`${location.origin}/app/state.js`);
  const { client } = ui.session;
  const time = (f) => {
    const runs = [];
    for (let i = 0; i < 15; i++) {
      const t = performance.now();
      f();
      runs.push(performance.now() - t);
    }
    return runs.sort((x, y) => x - y)[7];
  };
  // One redraw of the page: rAF callbacks run in order, so B (before) and A (after) bracket
  // the page's own render callback in the same frame.
  const redraws = [];
  for (let i = 0; i < 7; i++) {
    await new Promise((done) => {
      let start;
      requestAnimationFrame(() => (start = performance.now()));
      render();
      requestAnimationFrame(() => {
        redraws.push(performance.now() - start);
        done();
      });
    });
  }
  const conv = client.conversation(convId);
  return {
    redraw: redraws.sort((x, y) => x - y)[3],
    messages: client.timeline(convId).length,
    members: conv?.members.length ?? 0,
    timeline: time(() => client.timeline(convId)),
    conversations: time(() => client.conversations()),
    conversation: time(() => client.conversation(convId)),
    outbox: time(() => client.outbox()),
    can_send: time(() => client.can({ action: "send", conv: convId })),
    // What a page pays to compare member lists by content instead of by object.
    members_json: time(() => JSON.stringify(conv?.members ?? [])),
  };
}
