/* dashboard.js: the script of dashboard.html (a file of its own, so the
 * page's Content-Security-Policy can allow only 'self').  No framework,
 * no build step, no request to any other host. */
"use strict";
(function () {
	// /dashboard/{org}: the organization is the page's own path.
	var org = decodeURIComponent(location.pathname.split("/").filter(Boolean)[1] || "");
	var key = "telehook.token." + org;
	var api = "/api/v1/organizations/" + encodeURIComponent(org);
	var REFRESH_MS = 30000;
	var timer = null;
	var tz = "UTC";
	var tab = "today";
	var $ = function (id) { return document.getElementById(id); };
	var typeNames = {
		call_started: "Call started", call_ended: "Call ended",
		call_missed: "Missed call", sms_reply: "SMS received",
		sms_sent: "SMS sent", voicemail: "Voicemail",
		recording_ready: "Recording", inbound_call: "Inbound call",
		campaign_progress: "Campaign"
	};
	var outcomeNames = { answered: "Answered", missed: "Missed", voicemail: "Voicemail" };

	// The token arrives once in the fragment (#token=…), leaves the
	// address bar at once, and is kept in this browser.
	var m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
	if (m) {
		try { localStorage.setItem(key, decodeURIComponent(m[1])); } catch (e) {}
		history.replaceState(null, "", location.pathname + location.search);
	}
	function token() {
		try { return localStorage.getItem(key); } catch (e) { return null; }
	}

	function status(text, error) {
		$("status").textContent = text;
		$("status").className = error ? "error" : "";
	}

	function ask(why) {
		clearTimeout(timer);
		$("board").hidden = true;
		$("login").hidden = false;
		$("login-why").textContent = why;
		status(why, true);
		$("token").focus();
	}

	function call(path, method) {
		return fetch(api + path, {
			method: method || "GET",
			headers: { "Authorization": "Bearer " + token() },
			cache: "no-store"
		}).then(function (r) {
			if (r.status === 401) throw { auth: "This token was not accepted. Enter a valid dashboard token." };
			if (r.status === 404 && !path.match(/^\/(calls|conversations|campaigns)\//))
				throw { auth: "There is no dashboard here for this token." };
			return r;
		});
	}
	function get(path, method) {
		return call(path, method).then(function (r) {
			if (!r.ok) throw new Error("the server answered " + r.status);
			return r.json();
		});
	}

	function when(iso) {
		var d = new Date(iso);
		return d.toLocaleString([], { month: "short", day: "numeric",
			hour: "2-digit", minute: "2-digit" });
	}
	function el(tag, cls, text) {
		var e = document.createElement(tag);
		if (cls) e.className = cls;
		if (text !== undefined && text !== null) e.textContent = text;
		return e;
	}
	function button(text, label, fn) {
		var b = el("button", null, text);
		b.type = "button";
		if (label) b.setAttribute("aria-label", label);
		b.addEventListener("click", fn);
		return b;
	}

	function item(list, time, type, text) {
		var li = el("li");
		var t = el("time", null, when(time));
		t.dateTime = time;
		li.append(t, el("span", "type", type), el("span", "summary", text));
		list.append(li);
		return li;
	}

	function empty(list, text) {
		list.append(el("li", "empty", text));
	}

	// The organization's calendar day, as the API's since= takes it.
	function today() {
		try {
			return new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric",
				month: "2-digit", day: "2-digit" }).format(new Date());
		} catch (e) { return new Date().toISOString().slice(0, 10); }
	}

	function who(c) {
		return c.direction === "outbound" ? c.to : (c.caller_name ? c.caller_name + " " + c.from : c.from);
	}

	// One call as a list item: when, outcome, who, summary.
	function callItem(list, c) {
		var li = item(list, c.started_at, outcomeNames[c.outcome] || c.status,
			(c.direction === "outbound" ? "To " : "From ") + who(c) +
			(c.duration_s ? " · " + c.duration_s + " s" : "") +
			(c.summary ? " · " + c.summary : ""));
		li.dataset.call = c.call_id;
		return li;
	}

	// Today: the missed calls nobody has called back yet, first.
	function renderToday(missed) {
		var todo = $("callbacks"), done = $("done-today");
		todo.replaceChildren();
		done.replaceChildren();
		missed.calls.forEach(function (c) {
			var list = c.handled_at ? done : todo;
			var li = callItem(list, c);
			if (c.handled_at) {
				li.classList.add("handled");
				li.append(el("span", "note", "Handled " + when(c.handled_at)));
				li.append(button("Undo", "Not handled: " + c.from, function () {
					handled(c.call_id, "DELETE");
				}));
				return;
			}
			var a = el("a", "callback", "Call back " + c.from);
			a.href = "tel:" + c.from;
			li.append(a, button("Done", "Mark handled: " + c.from, function (ev) {
				ev.target.disabled = true;
				handled(c.call_id, "POST");
			}));
		});
		if (!todo.children.length) empty(todo, "Nobody to call back.");
		if (!done.children.length) empty(done, "Nothing handled yet today.");
	}

	function handled(id, method) {
		get("/calls/" + encodeURIComponent(id) + "/handled", method).then(load, fail);
	}

	function render(d, notes, missed) {
		var k = d.kpis;
		tz = d.timezone;
		Object.keys(k).forEach(function (name) {
			document.querySelectorAll('[data-kpi="' + name + '"]').forEach(function (e) {
				e.textContent = String(k[name]);
			});
		});
		var s = k.avg_call_seconds;
		$("avg-pretty").textContent = Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
		$("ai-rate").textContent = k.ai_calls_analyzed ?
			Math.round(100 * k.ai_calls_successful / k.ai_calls_analyzed) + "%" : "–";
		$("month").textContent = d.month + " · " + d.timezone;
		if (d.name) {
			$("org-name").textContent = d.name;
			document.title = d.name + " · telehook";
		}

		var list = $("activity");
		list.replaceChildren();
		d.recent_activity.forEach(function (a) {
			item(list, a.occurred_at, typeNames[a.type] || a.type, a.summary);
		});
		if (!d.recent_activity.length) empty(list, "No activity yet.");

		var nl = $("notifications");
		nl.replaceChildren();
		notes.notifications.forEach(function (n) {
			var li = item(nl, n.created_at, n.title, n.message);
			li.append(button("Mark read", "Mark read: " + n.message, function (ev) {
				ev.target.disabled = true;
				get("/notifications/" + encodeURIComponent(n.id) + "/read", "POST")
					.then(load, fail);
			}));
		});
		if (!notes.notifications.length) empty(nl, "No unread notifications.");
		if (missed) renderToday(missed);
		$("login").hidden = true;
		$("board").hidden = false;
		status("Updated " + new Date().toLocaleTimeString());
		document.body.dataset.state = "ready";
	}

	// A list the API pages with next: fill, and a button for more.
	function paged(list, more, path, each, none) {
		var next = null;
		function page(first) {
			var sep = path.indexOf("?") < 0 ? "?" : "&";
			return get(path + (next ? sep + "before=" + encodeURIComponent(next) : ""))
				.then(function (r) {
					if (first) list.replaceChildren();
					var items = r.calls || r.conversations || [];
					items.forEach(function (x) { each(list, x); });
					if (first && !items.length) empty(list, none);
					next = r.next;
					more.hidden = !next;
					more.onclick = function () { page(false).catch(fail); };
				});
		}
		return page(true);
	}

	function showCalls() {
		return paged($("calls"), $("calls-more"), "/calls?limit=50", function (list, c) {
			var li = callItem(list, c);
			if (c.transcript_excerpt) li.append(el("span", "summary quote", c.transcript_excerpt));
		}, "No calls yet.");
	}

	// The audio comes through telehook with the token in a header, which
	// an <audio src> cannot send: fetched, then played from a blob.
	function play(li, c, b) {
		b.disabled = true;
		status("Loading the recording…");
		Promise.all([call("/calls/" + encodeURIComponent(c.call_id) + "/recording"),
			get("/calls/" + encodeURIComponent(c.call_id))])
			.then(function (r) {
				if (!r[0].ok) throw new Error("the recording is not available (" + r[0].status + ")");
				return r[0].blob().then(function (blob) { return [blob, r[1]]; });
			})
			.then(function (r) {
				var audio = el("audio");
				audio.controls = true;
				audio.preload = "auto";
				audio.src = URL.createObjectURL(r[0]);
				li.append(audio);
				li.append(el("p", "summary transcript", r[1].transcript || "No transcription."));
				b.remove();
				status("Recording loaded");
			})
			.catch(function (e) { b.disabled = false; status("Could not play: " + (e.message || e), true); });
	}

	function showVoicemail() {
		return paged($("voicemails"), $("voicemails-more"), "/calls?status=voicemail&limit=50",
			function (list, c) {
				var li = callItem(list, c);
				li.classList.add("voicemail");
				if (c.transcript_excerpt) li.append(el("span", "summary quote", c.transcript_excerpt));
				if (c.has_recording) {
					var b = button("Play", "Play the voicemail from " + c.from, function () { play(li, c, b); });
					li.append(b);
				}
			}, "No voicemail.");
	}

	function openThread(contact) {
		var view = $("thread-view"), list = $("thread"), next = null;
		$("thread-title").textContent = contact;
		view.hidden = false;
		view.dataset.contact = contact;
		function page(first) {
			return get("/conversations/" + encodeURIComponent(contact) + "?limit=50" +
				(next ? "&before=" + next : "")).then(function (r) {
				if (first) list.replaceChildren();
				// the automatic replies this page shows as messages of their own
				var sent = {};
				r.messages.forEach(function (x) {
					if (x.direction === "outbound" && x.auto_reply && x.body) sent[x.body] = true;
				});
				// oldest at the top, as a thread reads
				r.messages.slice().reverse().forEach(function (x) {
					var li = el("li", "msg " + x.direction);
					if (x.body || x.num_media)
						li.append(el("p", "body", x.body || "(media)"));
					else	// a status callback, which carries no text
						li.append(el("p", "body unknown", "Text not reported by the provider"));
					var meta = el("p", "meta", when(x.created_at) + (x.status ? " · " + x.status : ""));
					if (x.auto_reply) meta.append(el("span", "tag", x.direction === "inbound" ? "auto-replied" : "automatic"));
					li.append(meta);
					// what the caller was answered, when no message here says it
					if (x.direction === "inbound" && x.reply_text && !sent[x.reply_text])
						li.append(el("p", "reply", "Automatic reply: " + x.reply_text));
					if (first) list.append(li); else list.prepend(li);
				});
				next = r.next;
				$("thread-more").hidden = !next;
				$("thread-more").onclick = function () { page(false).catch(fail); };
				document.body.dataset.thread = contact;
			});
		}
		return page(true).catch(fail);
	}

	function showMessages() {
		return paged($("threads"), $("threads-more"), "/conversations?limit=50", function (list, t) {
			var li = item(list, t.last_at, t.contact, (t.last_direction === "outbound" ? "You: " : "") +
				(t.last_body || (t.last_direction === "outbound" ? "(text not reported)" : "")) +
				" · " + t.messages + (t.messages === 1 ? " message" : " messages"));
			li.dataset.contact = t.contact;
			li.append(button("Open", "Open the conversation with " + t.contact, function () {
				openThread(t.contact);
			}));
		}, "No messages yet.");
	}

	function openCampaign(c) {
		var body = $("contacts").tBodies[0], after = null;
		$("campaign-title").textContent = c.name;
		$("campaign-view").hidden = false;
		function page(first) {
			return get("/campaigns/" + encodeURIComponent(c.id) + "?limit=100" +
				(after ? "&after=" + after : "")).then(function (r) {
				if (first) body.replaceChildren();
				r.contacts.forEach(function (k) {
					var tr = el("tr");
					[k.position, k.name || "", k.phone, k.status.replace("_", " "),
						outcomeNames[k.outcome] || "", k.summary || ""].forEach(function (v) {
						tr.append(el("td", null, String(v)));
					});
					body.append(tr);
				});
				after = r.next;
				$("contacts-more").hidden = !after;
				$("contacts-more").onclick = function () { page(false).catch(fail); };
			});
		}
		return page(true).catch(fail);
	}

	function showCampaigns() {
		return get("/campaigns").then(function (r) {
			var list = $("campaigns");
			list.replaceChildren();
			r.campaigns.forEach(function (c) {
				var li = el("li");
				li.append(el("span", "type", c.name), el("span", "summary",
					c.processed + " of " + c.total_contacts + " called · " + c.successful + " successful · " +
					c.contacts_by_status.pending + " pending"));
				li.append(button("Contacts", "Contacts of " + c.name, function () { openCampaign(c); }));
				list.append(li);
			});
			if (!r.campaigns.length) empty(list, "No campaigns.");
		});
	}

	var shows = { calls: showCalls, voicemail: showVoicemail, messages: showMessages,
		campaigns: showCampaigns };

	function select(name) {
		tab = name;
		document.querySelectorAll("[role=tab]").forEach(function (b) {
			b.setAttribute("aria-selected", String(b.dataset.tab === name));
		});
		document.querySelectorAll("[role=tabpanel]").forEach(function (p) {
			p.hidden = p.id !== "tab-" + name;
		});
		document.body.dataset.tab = name;
		if (shows[name]) {
			document.body.dataset.state = "loading";
			shows[name]().then(function () { document.body.dataset.state = "ready"; }, fail);
		}
	}
	document.querySelectorAll("[role=tab]").forEach(function (b) {
		b.addEventListener("click", function () { select(b.dataset.tab); });
	});

	function fail(e) {
		if (e && e.auth) {
			try { localStorage.removeItem(key); } catch (x) {}
			document.body.dataset.state = "bad-token";
			ask(e.auth);
			return;
		}
		document.body.dataset.state = "error";
		status("Could not refresh: " + (e && e.message ? e.message : e) +
			". Trying again shortly.", true);
		clearTimeout(timer);
		timer = setTimeout(load, REFRESH_MS);
	}

	function load() {
		clearTimeout(timer);
		if (!token()) {
			document.body.dataset.state = "no-token";
			ask("Enter the dashboard token you were given.");
			return;
		}
		get("/dashboard").then(function (d) {
			tz = d.timezone;
			return Promise.all([d, get("/notifications?unread=1"),
				get("/calls?status=missed&limit=200&since=" + today())]);
		}).then(function (r) {
			render(r[0], r[1], r[2]);
			timer = setTimeout(load, REFRESH_MS);
		}, fail);
	}

	$("login").addEventListener("submit", function (ev) {
		ev.preventDefault();
		try { localStorage.setItem(key, $("token").value.trim()); } catch (e) {}
		$("token").value = "";
		status("Loading…");
		load();
	});
	document.addEventListener("visibilitychange", function () {
		if (!document.hidden && token()) load();
	});
	load();
})();
